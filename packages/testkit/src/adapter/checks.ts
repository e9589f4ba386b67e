/**
 * The isolation checks of the adapter contract, as plain async functions: each throws
 * `AdapterCheckFailure` (or an assertion error) when the adapter breaks the contract. `testAdapter`
 * runs them as vitest tests; a suite of your own can call them directly.
 */
import { randomBytes } from 'node:crypto';
import { type ScopedAdapter, Tenant, type TenantDataOps } from '@tenantscope/core';
import type { Rejection } from '../errors.ts';

/** One item as the raw (unscoped) store holds it. */
export interface RawItem {
  /** The tenant the store says owns it (the tenant column / prefix / payload field / secret path). */
  readonly tenant: string;
  /** The item's key as the adapter's handle names it (row id, relative object key, point id, secret name). */
  readonly key: string;
  /** Its content, as text: the checks look for their markers in it. */
  readonly value: string;
}

/** What an adapter gives the suite: its factory, two verified tenants, and a few hooks. */
export interface AdapterHarness<Handle, Item> {
  /** The factory under test (`scoped<Raw>(...)`). */
  readonly adapter: ScopedAdapter<Handle, Item>;
  /** Two verified tenants, ideally fresh per run (`createTestIssuer().tenant(...)`). They start with no items. */
  readonly tenants: readonly [Tenant, Tenant];
  /** Stores one item under `key` with text `value` through the tenant's handle. */
  put(handle: Handle, key: string, value: string): Promise<void>;
  /** Reads one item through the handle: its text, or `undefined` when the tenant has none under `key`. May throw a typed not-found error. */
  get(handle: Handle, key: string): Promise<string | undefined>;
  /** Every key the handle lists. */
  list(handle: Handle): Promise<string[]>;
  /** Deletes one item through the handle (no error when absent, or a typed not-found error). */
  remove(handle: Handle, key: string): Promise<void>;
  /** Every item in the store, read with the raw client (no scope). Items of other tests may be there too. */
  raw(): Promise<RawItem[]>;
  /** The key of an exported item (as `list` names it). */
  itemKey(item: Item): string;
  /** The text of an exported item (as `get` returns it). */
  itemValue(item: Item): Promise<string> | string;
  /** Valid, distinct keys for `put`: the suite asks for `count` of them. Default `item-1`, `item-2`, ... */
  keys?(count: number): string[];
  /**
   * True when keys are global across tenants (Qdrant point ids): each tenant is then seeded with
   * keys of its own. Default false: both tenants are seeded under the same keys (each in its own
   * namespace), and the second tenant gets one key more.
   */
  globalKeys?: boolean;
  /**
   * The adapter still takes a tenant id string in `tenantData` (a deprecated operator form, as
   * `@tenantscope/s3` does until 1.0): the check then skips that one case. Every other non-Tenant
   * must still be refused.
   */
  tenantDataTakesIdString?: boolean;
  /** Frees what the harness built (clients, buckets, collections). */
  close?(): Promise<void>;
}

/** A contract check that failed: what the adapter did wrong. */
export class AdapterCheckFailure extends Error {
  override readonly name = 'AdapterCheckFailure';
}

function fail(message: string): never {
  throw new AdapterCheckFailure(message);
}

/** A stable code: an upper-case identifier (`NOT_A_TENANT`, `PG_QUERY_FAILED`, ...). */
export const STABLE_CODE = /^[A-Z][A-Z0-9_]{2,63}$/;

/** What `fn` threw or rejected with, or `undefined` if it succeeded. */
export async function caught(fn: Promise<unknown> | (() => unknown)): Promise<Rejection | undefined> {
  try {
    await (typeof fn === 'function' ? fn() : fn);
    return undefined;
  } catch (err) {
    return err as Rejection;
  }
}

/** Fails unless `err` is a typed error with a stable code that names none of `secrets`. */
export function expectSafeError(err: unknown, secrets: readonly string[], what: string): void {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !STABLE_CODE.test(code)) {
    fail(`${what}: threw ${String((err as Error)?.name)} without a stable code (${JSON.stringify(code)})`);
  }
  let json = '';
  try {
    json = JSON.stringify(err) ?? '';
  } catch {
    json = '';
  }
  const text = `${(err as Error).message}\n${json}\n${JSON.stringify((err as { details?: unknown }).details ?? null)}`;
  for (const s of secrets) {
    if (text.includes(s)) fail(`${what}: the error (${code}) carries another tenant's data`);
  }
}

async function expectNotATenant(fn: () => unknown, what: string): Promise<void> {
  const err = await caught(fn);
  if (err === undefined) fail(`${what} was accepted: it must throw NOT_A_TENANT`);
  if (err.code !== 'NOT_A_TENANT') fail(`${what} threw ${String(err.code ?? err.message)}, not NOT_A_TENANT`);
}

/** Things that look like a Tenant but were not verified by core. */
export function forgedTenants(like: Tenant): Array<[string, unknown]> {
  const fromPrototype = Object.create(Tenant.prototype) as Record<string, unknown>;
  Object.assign(fromPrototype, { id: like.id, subject: like.subject });
  return [
    ['undefined', undefined],
    ['null', null],
    ['a tenant id string', like.id],
    ['a plain object with the id', { id: like.id, subject: like.subject }],
    ['a JSON copy of a verified tenant', JSON.parse(JSON.stringify(like))],
    ['an object made from Tenant.prototype', fromPrototype],
    ['a Proxy of a verified tenant', new Proxy(like, {})],
  ];
}

interface Seeded {
  /** key -> value, per tenant id. */
  readonly items: Map<string, Map<string, string>>;
  /** The keys each tenant was seeded with, per tenant id. */
  readonly keys: Map<string, string[]>;
  /** A marker no other run shares; every value contains it. */
  readonly run: string;
}

/** A running harness plus what the checks seeded. */
export interface AdapterCheckContext<Handle, Item> {
  readonly harness: AdapterHarness<Handle, Item>;
  readonly seeded: Seeded;
}

function keysFor<H, I>(h: AdapterHarness<H, I>, n: number): string[] {
  return h.keys ? h.keys(n) : Array.from({ length: n }, (_, i) => `item-${i + 1}`);
}

/** Seeds three items for each tenant (the same keys, different values) and checks they landed where they should. */
export async function seedTenants<H, I>(harness: AdapterHarness<H, I>): Promise<AdapterCheckContext<H, I>> {
  const run = randomBytes(6).toString('hex');
  const items = new Map<string, Map<string, string>>();
  const all = keysFor(harness, 7);
  const [a, b] = harness.tenants;
  const keys = new Map([
    [a.id, all.slice(0, 3)],
    [b.id, harness.globalKeys ? all.slice(3, 7) : all.slice(0, 4)],
  ]);
  for (const tenant of harness.tenants) {
    const handle = harness.adapter.forTenant(tenant);
    const mine = new Map<string, string>();
    for (const key of keys.get(tenant.id) ?? []) {
      const value = `secret-of-${tenant.id}-${key}-${run}`;
      await harness.put(handle, key, value);
      mine.set(key, value);
    }
    items.set(tenant.id, mine);
  }
  const ctx = { harness, seeded: { items, keys, run } };
  await expectRawIntact(ctx, 'after seeding');
  return ctx;
}

function valuesOf(ctx: AdapterCheckContext<unknown, unknown>, tenant: Tenant): string[] {
  return [...(ctx.seeded.items.get(tenant.id)?.values() ?? [])];
}

/** Fails unless the raw store holds exactly the seeded items of each tenant (ignoring other runs' items). */
async function expectRawIntact<H, I>(ctx: AdapterCheckContext<H, I>, when: string, except?: Tenant): Promise<void> {
  const raw = (await ctx.harness.raw()).filter((r) => r.value.includes(ctx.seeded.run));
  for (const tenant of ctx.harness.tenants) {
    if (tenant === except) continue;
    const expected = ctx.seeded.items.get(tenant.id) ?? new Map<string, string>();
    const actual = raw.filter((r) => r.tenant === tenant.id);
    const got = new Map(actual.map((r) => [r.key, r.value]));
    if (actual.length !== expected.size || [...expected].some(([k, v]) => got.get(k) !== v)) {
      fail(
        `${when}: tenant ${tenant.id}'s items in the raw store changed (expected ${expected.size}, found ${actual.length}${
          [...expected].some(([k, v]) => got.has(k) && got.get(k) !== v) ? ', some values differ' : ''
        })`,
      );
    }
    for (const r of raw) {
      if (r.tenant !== tenant.id && expected.has(r.key) && r.value === expected.get(r.key)) {
        fail(`${when}: tenant ${tenant.id}'s value is stored under tenant ${r.tenant}`);
      }
    }
  }
}

/** forTenant, provider().forCall and tenantData refuse anything but a verified Tenant with NOT_A_TENANT. */
export async function checkRefusesForgedTenants<H, I>(ctx: AdapterCheckContext<H, I>): Promise<void> {
  const { adapter, tenants } = ctx.harness;
  for (const [what, forged] of forgedTenants(tenants[1])) {
    await expectNotATenant(() => adapter.forTenant(forged as Tenant), `forTenant(${what})`);
    await expectNotATenant(
      () => adapter.provider().forCall({ tenant: forged } as never),
      `provider().forCall with ${what}`,
    );
    if (typeof forged === 'string' && ctx.harness.tenantDataTakesIdString) continue;
    await expectNotATenant(async () => {
      const ops = adapter.tenantData(forged as Tenant);
      await ops.count();
    }, `tenantData(${what})`);
  }
  await expectRawIntact(ctx, 'after the forged tenants');
}

/** Tenant A never sees tenant B's items: list, get, count and export. */
export async function checkReadsIsolated<H, I>(ctx: AdapterCheckContext<H, I>): Promise<void> {
  const h = ctx.harness;
  const [a, b] = h.tenants;
  const handle = h.adapter.forTenant(a);
  const foreign = valuesOf(ctx, b);
  const own = ctx.seeded.items.get(a.id) ?? new Map<string, string>();

  const listed = await h.list(handle);
  for (const key of own.keys()) if (!listed.includes(key)) fail(`list: tenant ${a.id} does not see its own ${key}`);
  for (const key of own.keys()) {
    const got = await caught(async () => {
      const v = await h.get(handle, key);
      if (v !== own.get(key)) fail(`get(${key}): tenant ${a.id} read ${JSON.stringify(v)}, not its own value`);
    });
    if (got) throw got;
  }
  const bOnly = [...(ctx.seeded.items.get(b.id)?.keys() ?? [])].filter((k) => !own.has(k));
  for (const key of [...own.keys(), ...bOnly]) {
    let value: string | undefined;
    const err = await caught(async () => {
      value = await h.get(handle, key);
    });
    if (err) expectSafeError(err, foreign, `get(${key})`);
    if (value !== undefined && foreign.includes(value)) fail(`get(${key}): tenant ${a.id} read tenant ${b.id}'s value`);
  }

  const data = h.adapter.tenantData(a);
  const count = await data.count();
  if (count.total !== own.size) fail(`tenantData.count: total ${count.total}, tenant ${a.id} has ${own.size}`);
  if (typeof data.store !== 'string' || count.store !== data.store) fail('tenantData: count.store must equal store');
  const exported = await collect(data, h);
  const exportedKeys = exported.map((e) => e.key).sort();
  if (JSON.stringify(exportedKeys) !== JSON.stringify([...own.keys()].sort())) {
    fail(`tenantData.export: exported ${exportedKeys.length} items, tenant ${a.id} has ${own.size}`);
  }
  for (const e of exported) {
    if (foreign.some((f) => e.value.includes(f)))
      fail(`tenantData.export: tenant ${a.id}'s export holds ${b.id}'s data`);
  }
  const bCount = await h.adapter.tenantData(b).count();
  if (bCount.total !== foreign.length) fail(`tenantData.count of ${b.id}: ${bCount.total}, expected ${foreign.length}`);
}

async function collect<H, I>(data: TenantDataOps<I>, h: AdapterHarness<H, I>) {
  const out: { key: string; value: string }[] = [];
  for await (const item of data.export()) out.push({ key: h.itemKey(item), value: await h.itemValue(item) });
  return out;
}

/**
 * Writes aimed at the other tenant's keys (overwrite, delete) either fail with a safe typed error
 * or stay inside the writer's own tenant: the other tenant's raw items never change.
 */
export async function checkWritesIsolated<H, I>(ctx: AdapterCheckContext<H, I>): Promise<void> {
  const h = ctx.harness;
  const [a, b] = h.tenants;
  const handle = h.adapter.forTenant(a);
  const foreign = valuesOf(ctx, b);
  const own = ctx.seeded.items.get(a.id) as Map<string, string>;
  const bItems = ctx.seeded.items.get(b.id) as Map<string, string>;
  const removeAsWriter = async (key: string) => {
    const delErr = await caught(() => h.remove(handle, key));
    if (delErr) expectSafeError(delErr, foreign, `remove(${key}) by ${a.id}`);
    else own.delete(key);
    await expectRawIntact(ctx, `after ${a.id} deleted ${key}`, a);
  };
  for (const key of bItems.keys()) {
    // a key the writer may not have: delete first, then write, then delete its own copy
    if (!own.has(key)) await removeAsWriter(key);
    const value = `overwrite-by-${a.id}-${key}-${ctx.seeded.run}`;
    const putErr = await caught(() => h.put(handle, key, value));
    if (putErr) expectSafeError(putErr, foreign, `put(${key}) by ${a.id}`);
    else own.set(key, value);
    await expectRawIntact(ctx, `after ${a.id} wrote ${key}`, a);
    await removeAsWriter(key);
  }
  // put the writer's items back for the checks that follow
  for (const key of ctx.seeded.keys.get(a.id) ?? []) {
    const value = `secret-of-${a.id}-${key}-${ctx.seeded.run}`;
    await h.put(handle, key, value);
    own.set(key, value);
  }
  await expectRawIntact(ctx, 'after restoring the writer');
}

/** tenantData(a).delete() removes only a's items, reports before/after, and the recount is 0. */
export async function checkDeleteOnlyTenant<H, I>(ctx: AdapterCheckContext<H, I>): Promise<void> {
  const h = ctx.harness;
  const [a, b] = h.tenants;
  const own = ctx.seeded.items.get(a.id) as Map<string, string>;
  const data = h.adapter.tenantData(a);
  const result = await data.delete();
  if (result.before.total !== own.size)
    fail(`tenantData.delete: before.total ${result.before.total}, expected ${own.size}`);
  if (result.after.total !== 0) fail(`tenantData.delete: after.total ${result.after.total}, expected 0`);
  own.clear();
  if ((await data.count()).total !== 0) fail('tenantData.delete: the recount is not 0');
  if ((await h.list(h.adapter.forTenant(a))).length !== 0) fail(`tenantData.delete: ${a.id} still lists items`);
  await expectRawIntact(ctx, `after deleting ${a.id}'s data`);
  const bCount = await h.adapter.tenantData(b).count();
  if (bCount.total !== (ctx.seeded.items.get(b.id)?.size ?? 0)) fail(`tenantData.delete changed ${b.id}'s count`);
}

/** Every check, in the order `testAdapter` runs them (each leaves the seeded items as it found them, but the last). */
export const ADAPTER_CHECKS = {
  'forTenant, provider and tenantData refuse anything but a verified Tenant (NOT_A_TENANT)': checkRefusesForgedTenants,
  'tenant A never sees tenant B: list, get, tenantData count and export': checkReadsIsolated,
  "writes at the other tenant's keys are refused or stay in the writer's tenant; errors carry no other tenant's data":
    checkWritesIsolated,
  "tenantData.delete removes only the tenant's items, before/after reported, recount 0": checkDeleteOnlyTenant,
} as const;

/** Runs every check in order on a fresh seed; throws the first failure. For self-tests and custom runners. */
export async function runAdapterChecks<H, I>(harness: AdapterHarness<H, I>): Promise<void> {
  const ctx = await seedTenants(harness);
  for (const check of Object.values(ADAPTER_CHECKS)) await check(ctx as AdapterCheckContext<unknown, unknown>);
}
