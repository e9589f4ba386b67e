/**
 * `tenantscope tenant move --store postgres` with writes that outlive the settle wait. Two acme
 * writers that resolved the OLD place (the shared database) before the pause:
 * - a transaction that bound there before the pause and holds open well past `--settle-ms`,
 *   then writes and commits;
 * - a call delayed between resolving its placement and its BEGIN until the move has finished.
 * The first must be waited for by the fence (so the final copy carries its row), the second
 * refused by the old database and retried on the new one. Neither may be lost. Then acme moves
 * back: the shared database's fence is lifted, the dedicated one's set.
 *
 * `TENANTSCOPE_TEST_NO_FENCE=1` in this process's environment runs the same moves with the fence
 * step skipped (the behaviour before fences): both writes are then lost and the test fails.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tenant } from '@tenantscope/core';
import {
  databaseUrl,
  installTenantScope,
  isFenced,
  type PgPlacement,
  type PlacementRegistry,
  pg,
  placementRegistry,
  provisionTenantDatabase,
  type ScopedPool,
  scopedPool,
  tenantTableSql,
} from '@tenantscope/postgres';
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { directUrl, TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { holdTransaction } from '../../packages/postgres/src/testing/held.ts';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { runCli, writeJson } from './helpers.ts';

const SCHEMA = 'tenantscope_placement';
const SETTLE_MS = 300;
/** How long past the pause the held transaction stays open: well past SETTLE_MS. */
const HOLD_MS = 2500;
const NO_FENCE = process.env.TENANTSCOPE_TEST_NO_FENCE === '1';

let dir: string;
let db: ScratchDatabase;
let su: pg.Client;
let bindingKey: Buffer;
let config: string;
let target: string;
let issuer: Awaited<ReturnType<typeof createTestIssuer>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The ids of a tenant's customers in one database, read by the superuser. */
async function idsIn(database: string, tenant: string): Promise<Set<string>> {
  const c = new pg.Client({ connectionString: databaseUrl(db.superUrl, database) });
  await c.connect();
  try {
    const r = await c.query<{ id: string }>('SELECT id FROM customers WHERE tenant_id = $1', [tenant]);
    return new Set(r.rows.map((x) => x.id));
  } finally {
    await c.end();
  }
}

async function owner<T>(database: string, fn: (p: pg.Pool) => Promise<T>): Promise<T> {
  const p = new pg.Pool({ connectionString: databaseUrl(db.ownerUrl, database), max: 1 });
  try {
    return await fn(p);
  } finally {
    await p.end();
  }
}

const CUSTOMERS =
  'CREATE TABLE IF NOT EXISTS customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, name text, email text)';

/**
 * The app as a server wires it: one scoped pool whose placement comes from the registry (LISTEN,
 * short cache). `hold` delays acme's calls between resolving and running, while it is set.
 */
class App {
  readonly registry: PlacementRegistry;
  readonly pool: ScopedPool;
  readonly #raw: pg.Pool;
  /** While set, an acme call that resolved its placement waits for it before running. */
  hold: Promise<void> | undefined;
  /** The placements acme's calls resolved (database names; shared = the scratch database). */
  readonly resolved: string[] = [];

  constructor() {
    this.#raw = new pg.Pool({ connectionString: db.appUrl, max: 2 });
    this.registry = placementRegistry({
      pool: this.#raw,
      cacheMs: 200,
      pauseWaitMs: 10_000,
      listenConnectionString: directUrl(db.appUrl),
    });
    const inner = this.registry.resolver(
      'postgres',
      (t): PgPlacement =>
        t.tier === 'shared'
          ? { tier: 'shared' }
          : { tier: 'dedicated', connectionString: databaseUrl(db.appUrl, t.target as string) },
    );
    const resolver = Object.assign(
      async (tenant: Tenant) => {
        const p = await inner(tenant);
        if (tenant.id === 'acme') {
          this.resolved.push(p.tier === 'shared' ? db.name : new URL(p.connectionString).pathname.slice(1));
          if (this.hold) await this.hold;
        }
        return p;
      },
      { invalidate: (id: string) => inner.invalidate(id) },
    );
    this.pool = scopedPool(
      { connectionString: db.appUrl, max: 4 },
      { bindingKey, placement: resolver, pooler: TEST_POOLER },
    );
  }

  async close(): Promise<void> {
    await this.registry.close();
    await this.pool.end();
    await this.#raw.end();
  }
}

const insert = 'INSERT INTO customers (id, subject_id, name, email) VALUES ($1, $2, $3, $4)';
const row = (id: string) => [id, 'late', `late ${id}`, 'late@example.test'];

const move = (to: 'shared' | 'dedicated', extra: string[] = []) =>
  runCli(
    [
      'tenant',
      'move',
      'acme',
      '--store',
      'postgres',
      '--to',
      to,
      ...(to === 'dedicated' ? ['--target', target] : []),
      '--settle-ms',
      String(SETTLE_MS),
      '--config',
      config,
      ...extra,
    ],
    NO_FENCE ? { TENANTSCOPE_TEST_NO_FENCE: '1' } : {},
    120_000,
  );

/** Resolves when the registry shows acme's postgres placement in one of `states` (no row: active). */
async function until(app: App, states: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await app.registry.get('acme', 'postgres');
    if (states.includes(e?.state ?? 'active')) return;
    if (Date.now() > deadline) throw new Error(`acme's move never reached ${states.join('/')}`);
    await sleep(10);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsfence-'));
  db = await createScratchDatabase(inject('databaseUrl'), 'movefence');
  su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  await owner(db.name, async (p) => {
    ({ bindingKey } = await installTenantScope(p, { appRole: db.appRole }));
    await p.query(CUSTOMERS);
    await p.query(tenantTableSql({ table: 'customers', idColumn: 'id', grantTo: db.appRole }));
    const reg = placementRegistry({ pool: p, schema: SCHEMA });
    await reg.migrate();
    await p.query(
      `GRANT USAGE ON SCHEMA ${SCHEMA} TO ${db.appRole}; GRANT SELECT ON ${SCHEMA}.placements TO ${db.appRole}`,
    );
  });
  for (const t of ['acme', 'globex']) {
    for (let i = 0; i < 20; i++) {
      await su.query('INSERT INTO customers VALUES ($1, $2, $3, $4, $5)', [randomUUID(), t, 's', `${t} ${i}`, 'e']);
    }
  }
  target = `${db.name}_acme`;
  await provisionTenantDatabase({
    adminConnectionString: directUrl(db.superUrl),
    tenant: 'acme',
    database: target,
    bindingKey,
    appRole: db.appRole,
    ownerRole: db.ownerRole,
    setup: async (c) => {
      await c.query(CUSTOMERS);
      await c.query(tenantTableSql({ table: 'customers', idColumn: 'id', grantTo: db.appRole }));
    },
  });
  issuer = await createTestIssuer();
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: ['acme', 'globex'],
      postgres: { url: db.ownerUrl, tables: [{ name: 'customers' }], pooler: TEST_POOLER },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'ops@example.test',
    },
  });
}, 120_000);

afterAll(async () => {
  await su?.query(`DROP DATABASE IF EXISTS ${target} WITH (FORCE)`).catch(() => undefined);
  await su?.end();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('tenant move --store postgres: the old place is fenced', () => {
  it('a transaction held open past --settle-ms and a call delayed between resolve and BEGIN both land on the new place', async () => {
    const app = new App();
    expect(await app.registry.listening()).toBe(true);
    const acme = await issuer.tenant('acme');
    const globex = await issuer.tenant('globex');
    const before = await idsIn(db.name, 'acme');
    try {
      // 1. A transaction of acme binds on the shared database and holds open.
      const heldId = randomUUID();
      const held = holdTransaction(app.pool.forTenant(acme), (tx) => tx.query(insert, row(heldId)));
      await held.bound;
      expect(app.resolved.at(-1)).toBe(db.name);

      // 2. A call of acme resolves the old place, then stalls (until the move is over) before its BEGIN.
      let open!: () => void;
      app.hold = new Promise<void>((r) => {
        open = r;
      });
      const delayedId = randomUUID();
      const n = app.resolved.length;
      const delayed = app.pool.forTenant(acme).query(insert, row(delayedId));
      while (app.resolved.length === n) await sleep(5);
      expect(app.resolved[n]).toBe(db.name);
      app.hold = undefined;

      const run = move('dedicated');
      await until(app, ['paused']);
      const pausedAt = Date.now();

      // globex is not paused: it writes while acme is fenced
      const globexIds: string[] = [];
      const globexLoad = (async () => {
        while (Date.now() - pausedAt < HOLD_MS + 500) {
          const id = randomUUID();
          await app.pool.forTenant(globex).query(insert, row(id));
          globexIds.push(id);
          await sleep(20);
        }
      })();

      await sleep(Math.max(0, pausedAt + HOLD_MS - Date.now()));
      held.release();
      await held.done;
      await globexLoad;
      const r = await run;
      expect(r.code, r.stderr).toBe(0);
      // The move is over (switched, old copy deleted): only now does the stalled call go on.
      open();
      await delayed;

      const inNew = await idsIn(target, 'acme');
      const inOld = await idsIn(db.name, 'acme');
      // Nothing of acme left in the old place, and both late writes are in the new one.
      expect.soft(inOld.size, 'acme rows left in the old place').toBe(0);
      expect.soft(inNew.has(heldId), 'the held transaction was lost').toBe(true);
      expect.soft(inNew.has(delayedId), 'the delayed call was lost').toBe(true);
      expect(inNew.size).toBe(before.size + 2);
      // The delayed call was refused by the old place and retried on the new one.
      expect(app.resolved.slice(n)).toEqual([db.name, target]);
      expect(globexIds.length).toBeGreaterThan(10);
      const globexRows = await idsIn(db.name, 'globex');
      for (const id of globexIds) expect(globexRows.has(id)).toBe(true);
      // The old place stays fenced for acme; the new one is not.
      expect(await owner(db.name, (p) => isFenced(p, 'acme'))).toBe(true);
      expect(await owner(target, (p) => isFenced(p, 'acme'))).toBe(false);
    } finally {
      await app.close();
    }
  }, 180_000);

  it('acme moves back: the shared fence is lifted, the dedicated one set, and acme writes on shared again', async () => {
    const app = new App();
    const acme = await issuer.tenant('acme');
    try {
      const before = await idsIn(target, 'acme');
      const r = await move('shared');
      expect(r.code, r.stderr).toBe(0);
      expect(await owner(db.name, (p) => isFenced(p, 'acme'))).toBe(false);
      expect(await owner(target, (p) => isFenced(p, 'acme'))).toBe(true);
      expect((await idsIn(db.name, 'acme')).size).toBe(before.size);
      expect((await idsIn(target, 'acme')).size).toBe(0);
      const id = randomUUID();
      await app.pool.forTenant(acme).query(insert, row(id));
      expect((await idsIn(db.name, 'acme')).has(id)).toBe(true);
    } finally {
      await app.close();
    }
  }, 120_000);
});
