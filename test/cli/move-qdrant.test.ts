/**
 * `tenantscope tenant move --store qdrant` under load (issue 14 §3), on the run's Qdrant (the
 * QdrantProtocolDouble unless QDRANT_URL is set). acme and globex upsert and search continuously
 * through one scoped client whose placement the registry resolves per call, while the real bin
 * (a child process) moves acme: shared → its own shard key in a custom-sharded collection, then
 * that shard key → a collection of its own. Checks: 0 failed globex calls (and no pause), 0 lost
 * acme writes (every acknowledged upsert is at the new place, payload and vector identical to
 * float32 precision), acme's earlier points identical, 0 acme points left at the old place,
 * globex unchanged. Prints globex's p99 before, during and after each move. And a move to the
 * shard-key tier killed (SIGKILL) while paused is rolled back (resuming is the same code as for
 * Postgres and S3, tested in move.test.ts). And the client-side write bound against the real
 * registry: a write resolved before a pause and held past the switch is not sent to the old place.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tenant } from '@tenantscope/core';
import {
  installTenantScope,
  type PlacementRegistry,
  pg,
  placementRegistry,
  tenantTableSql,
} from '@tenantscope/postgres';
import { QdrantClient, registryPlacement, type ScopedQdrant, scopedQdrant } from '@tenantscope/qdrant';
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { directUrl } from '../../packages/postgres/src/testing/fixture.ts';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { qdrantRest, runCli, writeJson } from './helpers.ts';

const SLOW = 300_000;
const SCHEMA = 'tenantscope_placement';
const FIELD = 'tenant_id';
let dir: string;
let db: ScratchDatabase;
let config: string;
let shared: string;
let sharded: string;
let own: string;
let issuer: Awaited<ReturnType<typeof createTestIssuer>>;

interface Pt {
  id: string | number;
  payload: Record<string, unknown>;
  vector: number[];
}

/** A Dot-product collection (no renormalisation on upsert: vectors are stored as sent, in float32). */
async function createCollection(name: string, custom = false): Promise<void> {
  await qdrantRest('PUT', `/collections/${name}`, {
    vectors: { size: 4, distance: 'Dot' },
    ...(custom ? { sharding_method: 'custom' } : {}),
  });
}

/** A tenant's points at one place (raw REST, the tenant filter; under its shard key when given), by id. */
async function pointsAt(collection: string, tenant: string, shardKey?: string): Promise<Map<string, Pt>> {
  const out = new Map<string, Pt>();
  let offset: unknown;
  do {
    const r = (
      await qdrantRest('POST', `/collections/${collection}/points/scroll`, {
        filter: { must: [{ key: FIELD, match: { value: tenant } }] },
        limit: 500,
        with_payload: true,
        with_vector: true,
        ...(shardKey ? { shard_key: shardKey } : {}),
        ...(offset === undefined ? {} : { offset }),
      })
    ).result as { points: Pt[]; next_page_offset?: unknown };
    for (const p of r.points) out.set(String(p.id), p);
    offset = r.next_page_offset ?? undefined;
  } while (offset !== undefined);
  return out;
}

const f32 = (v: number[]) => v.map(Math.fround);
/** Same ids, payloads, and vectors equal as float32. */
function expectSamePoints(got: Map<string, Pt>, want: Map<string, Pt>): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [id, w] of want) {
    const g = got.get(id) as Pt;
    expect(g.payload, id).toEqual(w.payload);
    expect(f32(g.vector), id).toEqual(f32(w.vector));
  }
}

/** The app: one scoped Qdrant client, placement resolved per call through the registry (LISTEN on). */
class App {
  readonly registry: PlacementRegistry;
  readonly vectors: ScopedQdrant;
  readonly #pool: pg.Pool;
  constructor() {
    this.#pool = new pg.Pool({ connectionString: db.appUrl, max: 2 });
    this.registry = placementRegistry({
      pool: this.#pool,
      cacheMs: 200,
      pauseWaitMs: 5000,
      listenConnectionString: directUrl(db.appUrl),
    });
    const key = inject('qdrantApiKey') || undefined;
    this.vectors = scopedQdrant(
      new QdrantClient({ url: inject('qdrantUrl'), apiKey: key, checkCompatibility: false }),
      {
        collection: shared,
        tenantField: FIELD,
        placementResolver: this.registry.resolver(
          'qdrant',
          registryPlacement(shared, { shardKeyCollections: [sharded] }),
        ),
      },
    );
  }
  async close() {
    await this.registry.close();
    await this.#pool.end();
  }
}

const vecOf = (n: number) => [1 + (n % 7) / 10, 0.3 + (n % 5) / 9, -0.2 - (n % 3) / 7, 0.123456789 * ((n % 11) + 1)];

interface Run {
  acked: Map<string, Map<string, Pt>>;
  failures: Map<string, unknown[]>;
  paused: Map<string, number>;
  /** globex's latencies per phase. */
  globex: Map<string, number[]>;
}

/**
 * Two workers per tenant (acme, globex): upsert a new point (acknowledged when the call returns),
 * then search near it, which must answer only the tenant's own points. Runs `move` after 1 s of
 * warm-up and 1.5 s of baseline, then 1.5 s more.
 */
async function underLoad(move: () => Promise<void>): Promise<Run> {
  const app = new App();
  expect(await app.registry.listening()).toBe(true);
  const tenants: Tenant[] = [await issuer.tenant('acme'), await issuer.tenant('globex')];
  const run: Run = {
    acked: new Map(tenants.map((t) => [t.id, new Map()])),
    failures: new Map(tenants.map((t) => [t.id, []])),
    paused: new Map(tenants.map((t) => [t.id, 0])),
    globex: new Map(),
  };
  let phase = 'warm-up';
  let running = true;
  let n = 0;
  const worker = async (t: Tenant) => {
    while (running) {
      const i = n++;
      const p: Pt = { id: randomUUID(), vector: vecOf(i), payload: { [FIELD]: t.id, i, text: `${t.id} load ${i}` } };
      const t0 = performance.now();
      try {
        const v = app.vectors.forTenant(t);
        await v.upsert({ points: [{ id: p.id, vector: p.vector, payload: p.payload }] });
        run.acked.get(t.id)?.set(String(p.id), p);
        const hits = await v.query({ query: p.vector, limit: 3, with_payload: true });
        if (hits.points.some((h) => h.payload?.[FIELD] !== t.id)) throw new Error('a search answered a foreign point');
        if (t.id === 'globex') {
          if (!run.globex.has(phase)) run.globex.set(phase, []);
          run.globex.get(phase)?.push(performance.now() - t0);
        }
      } catch (err) {
        if ((err as { code?: string }).code === 'PLACEMENT_PAUSED')
          run.paused.set(t.id, (run.paused.get(t.id) ?? 0) + 1);
        else run.failures.get(t.id)?.push(err);
      }
    }
  };
  const workers = tenants.flatMap((t) => [worker(t), worker(t)]);
  await sleep(1000);
  phase = 'before';
  await sleep(1500);
  phase = 'during';
  await move();
  phase = 'after';
  await sleep(1500);
  running = false;
  await Promise.all(workers);
  await app.close();
  return run;
}

const p99 = (xs: number[] = []) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] as number) : Number.NaN;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Moves acme to `target` under load and checks everything the issue asks; returns the run. */
async function moveAcme(
  target: string,
  from: { collection: string; shardKey?: string },
  to: { collection: string; shardKey?: string },
): Promise<void> {
  const acmeBefore = await pointsAt(from.collection, 'acme', from.shardKey);
  const globexBefore = await pointsAt(shared, 'globex');
  expect(acmeBefore.size).toBeGreaterThan(0);
  let out: { code: number | null; stdout: string; stderr: string } | undefined;
  const run = await underLoad(async () => {
    out = await runCli(
      [
        'tenant',
        'move',
        'acme',
        '--store',
        'qdrant',
        '--to',
        'dedicated',
        '--target',
        target,
        '--config',
        config,
      ].concat(['--settle-ms', '600', '--json']),
      {},
      280_000,
    );
  });
  const phase = (p: string) => `${p} ${p99(run.globex.get(p)).toFixed(1)} ms (${run.globex.get(p)?.length ?? 0} calls)`;
  console.log(
    `[move qdrant -> ${to.shardKey ? 'shard key' : 'own collection'}] globex p99 ${['before', 'during', 'after'].map(phase).join(', ')}; acme: ${run.acked.get('acme')?.size} acknowledged upserts, ${run.paused.get('acme')} retryable PLACEMENT_PAUSED answers`,
  );
  expect(out?.stderr).toBe('');
  expect(out?.code).toBe(0);
  expect(JSON.parse(out?.stdout ?? '{}')).toMatchObject({ status: 'moved', to: { tier: 'dedicated', target } });

  expect(run.failures.get('globex')).toEqual([]);
  expect(run.paused.get('globex')).toBe(0);
  expect(run.failures.get('acme')).toEqual([]);
  expect(run.globex.get('during')?.length ?? 0).toBeGreaterThan(0);
  const acked = run.acked.get('acme') as Map<string, Pt>;
  expect(acked.size).toBeGreaterThan(0);

  // Acme at the new place: its earlier points and every acknowledged upsert, identical; nothing more.
  const moved = await pointsAt(to.collection, 'acme', to.shardKey);
  const lost = [...acked.keys()].filter((id) => !moved.has(id));
  expect(lost).toEqual([]);
  expectSamePoints(moved, new Map([...acmeBefore, ...acked]));
  // The old place holds no acme point; globex is as it was, plus its own acknowledged upserts.
  expect((await pointsAt(from.collection, 'acme', from.shardKey)).size).toBe(0);
  expectSamePoints(await pointsAt(shared, 'globex'), new Map([...globexBefore, ...(run.acked.get('globex') ?? [])]));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsmoveq-'));
  db = await createScratchDatabase(inject('databaseUrl'), 'moveq');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  await installTenantScope(owner, { appRole: db.appRole });
  await owner.query('CREATE TABLE notes (id uuid PRIMARY KEY, tenant_id text NOT NULL, body text)');
  await owner.query(tenantTableSql({ table: 'notes', idColumn: 'id', grantTo: db.appRole }));
  await placementRegistry({ pool: owner, schema: SCHEMA }).migrate();
  await owner.query(
    `GRANT USAGE ON SCHEMA ${SCHEMA} TO ${db.appRole}; GRANT SELECT ON ${SCHEMA}.placements TO ${db.appRole}`,
  );
  await owner.end();
  issuer = await createTestIssuer();
  const base = `moveq_${Date.now().toString(36)}`;
  shared = base;
  sharded = `${base}_sk`;
  own = `${base}_acme`;
  await createCollection(shared);
  await createCollection(sharded, true);
  await createCollection(own);
  for (const c of [shared, own]) {
    await qdrantRest('PUT', `/collections/${c}/index?wait=true`, {
      field_name: FIELD,
      field_schema: { type: 'keyword', is_tenant: true },
    });
  }
  await qdrantRest('PUT', `/collections/${shared}/points?wait=true`, {
    points: ['acme', 'globex', 'initech'].flatMap((t, ti) =>
      Array.from({ length: 40 }, (_, i) => ({
        id: ti * 1000 + i + 1,
        vector: vecOf(ti * 7 + i),
        payload: { [FIELD]: t, text: `${t} doc ${i} ü`, nested: { n: i, tags: ['a', t] } },
      })),
    ),
  });
  process.env.MOVE_Q_TEST_QDRANT_KEY = inject('qdrantApiKey');
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: ['acme', 'globex', 'initech'],
      postgres: { url: db.ownerUrl, tables: [{ name: 'notes' }] },
      qdrant: {
        url: inject('qdrantUrl'),
        collection: shared,
        ...(inject('qdrantApiKey') ? { apiKeyEnv: 'MOVE_Q_TEST_QDRANT_KEY' } : {}),
      },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'ops@example.test',
    },
  });
});

afterAll(async () => {
  for (const c of [shared, sharded, own]) await qdrantRest('DELETE', `/collections/${c}`).catch(() => undefined);
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('tenantscope tenant move --store qdrant, under load', () => {
  it(
    "shared -> acme's own shard key (created by the move), then -> a collection of its own: 0 failed globex calls, 0 lost acme writes, points identical, old place empty",
    async () => {
      // The shard key does not exist yet: the move creates it.
      expect((await qdrantRest('GET', `/collections/${sharded}/shards`)).result).toMatchObject({ shard_keys: [] });
      await moveAcme(sharded, { collection: shared }, { collection: sharded, shardKey: 'acme' });
      const keys = (await qdrantRest('GET', `/collections/${sharded}/shards`)).result as {
        shard_keys: { key: string }[];
      };
      expect(keys.shard_keys.map((k) => k.key)).toEqual(['acme']);
      // No acme point anywhere but under its key in the sharded collection (reads without shard_key see every key).
      expect((await pointsAt(sharded, 'acme')).size).toBe((await pointsAt(sharded, 'acme', 'acme')).size);

      await moveAcme(own, { collection: sharded, shardKey: 'acme' }, { collection: own });
      expect((await pointsAt(shared, 'acme')).size).toBe(0);
      // initech, never moved, is untouched in the shared collection.
      expect((await pointsAt(shared, 'initech')).size).toBe(40);
    },
    SLOW,
  );

  it(
    'a write held between its resolve and its send while the registry pauses and switches the tenant is sent nowhere (PLACEMENT_PAUSED); its retry lands at the new place',
    async () => {
      const app = new App();
      const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
      const operator = placementRegistry({ pool: owner, schema: SCHEMA });
      try {
        expect(await app.registry.listening()).toBe(true);
        let release: () => void = () => undefined;
        const held = new Promise<void>((r) => {
          release = r;
        });
        let reached: () => void = () => undefined;
        const atScroll = new Promise<void>((r) => {
          reached = r;
        });
        const raw = new QdrantClient({ url: inject('qdrantUrl'), apiKey: inject('qdrantApiKey') || undefined });
        // The upsert's ownership check (a scroll) is held: the write was resolved, not yet sent.
        const slow = new Proxy(raw, {
          get(target, prop) {
            const v = Reflect.get(target, prop, target) as unknown;
            if (prop !== 'scroll' || typeof v !== 'function') return v;
            return async (...a: unknown[]) => {
              reached();
              await held;
              return (v as (...x: unknown[]) => unknown).apply(target, a);
            };
          },
        });
        const hooli = scopedQdrant(slow, {
          collection: shared,
          tenantField: FIELD,
          placementResolver: app.registry.resolver(
            'qdrant',
            registryPlacement(shared, { shardKeyCollections: [sharded] }),
          ),
        }).forTenant(await issuer.tenant('hooli'));
        await operator.beginMove('hooli', 'qdrant', { tier: 'dedicated', target: own });
        const write = hooli
          .upsert({ points: [{ id: 'a0f0e2b4-0000-4000-8000-000000000001', vector: vecOf(1) }] })
          .catch((e: unknown) => e);
        await atScroll;
        await operator.pause('hooli', 'qdrant');
        await operator.switchPlacement('hooli', 'qdrant');
        await sleep(300); // past LISTEN's delivery and the app's cacheMs (200)
        release();
        expect(await write).toMatchObject({ code: 'PLACEMENT_PAUSED' });
        expect((await pointsAt(shared, 'hooli')).size).toBe(0);
        expect((await pointsAt(own, 'hooli')).size).toBe(0);
        await hooli.upsert({ points: [{ id: 'a0f0e2b4-0000-4000-8000-000000000001', vector: vecOf(1) }] });
        expect([...(await pointsAt(own, 'hooli')).keys()]).toEqual(['a0f0e2b4-0000-4000-8000-000000000001']);
        expect((await pointsAt(shared, 'hooli')).size).toBe(0);
        await operator.finishMove('hooli', 'qdrant');
      } finally {
        await app.close();
        await owner.end();
      }
    },
    SLOW,
  );

  it(
    'to the shard-key tier, killed while paused: --rollback keeps initech in the shared collection, points identical, and empties its key',
    async () => {
      const before = await pointsAt(shared, 'initech');
      const args = (...more: string[]) => [
        ...['tenant', 'move', 'initech', '--store', 'qdrant', '--to', 'dedicated', '--target', sharded],
        ...['--config', config, '--settle-ms', '100', ...more],
      ];
      expect((await runCli(args(), { TENANTSCOPE_TEST_KILL_AT: 'after-pause' })).code).toBe(null);
      expect((await pointsAt(sharded, 'initech', 'initech')).size).toBe(before.size); // copied, not switched
      const rb = await runCli(args('--rollback', '--json'));
      expect(rb.code, rb.stderr).toBe(0);
      expect(JSON.parse(rb.stdout).status).toBe('rolled-back');
      expectSamePoints(await pointsAt(shared, 'initech'), before);
      expect((await pointsAt(sharded, 'initech', 'initech')).size).toBe(0);
    },
    SLOW,
  );
});
