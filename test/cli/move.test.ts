/**
 * `tenantscope tenant move` through the real bin, in a child process, while an in-process load of
 * acme and globex calls runs through scoped adapters that resolve their placement through the
 * registry on every call. Checks: 0 failed globex calls, every acknowledged acme write present
 * after the move (0 lost), acme's data identical, the old place empty, the move recorded once in
 * acme's hash-chained audit stream and the chain verifies; a move killed with SIGKILL at a step is
 * finished (or rolled back) by a rerun. Prints globex's p99 before, during and after the move.
 */
import { randomUUID } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { verifyJsonl } from '@tenantscope/audit';
import type { Tenant } from '@tenantscope/core';
import {
  databaseUrl,
  type PlacementRegistry,
  pg,
  placementRegistry,
  type ScopedPool,
  scopedPool,
} from '@tenantscope/postgres';
import { type ScopedS3, scopedS3 } from '@tenantscope/s3';
import { createTestBucket, createTestIssuer, deleteTestBucket } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { directUrl } from '../../packages/postgres/src/testing/fixture.ts';
import type { ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { type CliRun, qdrantRest, runCli } from './helpers.ts';
import { createMoveFixture, type MoveFixture } from './move-fixture.ts';

const SLOW = 300_000;
const NO_ANCHORS = { record: async () => {}, list: async () => [] };
const TENANTS = ['acme', 'globex', 'initech', 'hooli'];
let fx: MoveFixture;
let db: ScratchDatabase;
let su: pg.Client;
let bindingKey: Buffer;
let auditDir: string;
const dedicated: string[] = [];
let s3: S3Client;
let shared: string;
const buckets: string[] = [];

// Set-up shared with move-kill.test.ts (move-fixture.ts): the scratch database, tenant databases, raw readers.
const objectsOf = (bucket: string, tenant: string) => fx.objectsOf(bucket, tenant);
const provision = (name: string) => fx.provision(name);
const rowsOf = (database: string, tenant: string) => fx.rowsOf(database, tenant);
const moveEvents = (tenant: string) => fx.moveEvents(tenant);

/** The app side: scoped pools per database, routed per call through the registry's resolver. */
/**
 * The app side, as a server wires it: ctx.db is one scoped pool and ctx.files one scoped S3
 * client, each resolving its placement through the registry on every call.
 */
class App {
  readonly registry: PlacementRegistry;
  readonly #appPool: pg.Pool;
  readonly #db: ScopedPool;
  readonly files: ScopedS3;
  constructor() {
    this.#appPool = new pg.Pool({ connectionString: db.appUrl, max: 2 });
    this.registry = placementRegistry({
      pool: this.#appPool,
      cacheMs: 200,
      pauseWaitMs: 5000,
      listenConnectionString: directUrl(db.appUrl),
    });
    this.files = scopedS3(s3, {
      bucket: shared,
      placement: this.registry.resolver('s3', (t, id) =>
        t.tier === 'shared'
          ? { tier: 'shared' as const, bucket: shared, prefix: `tenants/${id}/` }
          : { tier: 'dedicated' as const, bucket: t.target as string, prefix: `tenants/${id}/` },
      ),
    });
    this.#db = scopedPool(
      { connectionString: db.appUrl, max: 3 },
      {
        bindingKey,
        tenantPoolMax: 3,
        placement: this.registry.resolver('postgres', (t) =>
          t.tier === 'shared'
            ? { tier: 'shared' as const }
            : { tier: 'dedicated' as const, connectionString: databaseUrl(db.appUrl, t.target as string) },
        ),
      },
    );
  }
  async db(tenant: Tenant) {
    return this.#db.forTenant(tenant);
  }
  async close() {
    await this.registry.close();
    await this.#db.end();
    await this.#appPool.end();
  }
}

interface Load {
  acked: Map<string, string[]>;
  failures: Map<string, unknown[]>;
  retries: Map<string, number>;
  latencies: Map<string, Map<string, number[]>>;
  phase: { now: string };
  stop(): Promise<void>;
}

/** Postgres: insert a customer (acknowledged = committed), then read a count. */
const pgOp = (app: App) => async (t: Tenant, id: string, ack: () => void) => {
  const tdb = await app.db(t);
  await tdb.query('INSERT INTO customers (id, subject_id, name, email) VALUES ($1, $2, $3, $4)', [
    id,
    'load',
    `load ${id}`,
    'x@example.test',
  ]);
  ack();
  await tdb.query('SELECT count(*) FROM customers');
};

/** S3: put an object (acknowledged = stored), then read it back. */
const s3Op = (app: App) => async (t: Tenant, id: string, ack: () => void) => {
  const files = app.files.forTenant(t);
  await files.put(`load/${id}.txt`, id);
  ack();
  if ((await files.getText(`load/${id}.txt`)) !== id) throw new Error('read back another body');
};

/** Two workers per tenant, each running `op` in a loop; latencies per tenant and phase. */
function startLoad(
  tenants: Tenant[],
  op: (t: Tenant, id: string, ack: () => void) => Promise<void>,
  paceMs: number,
): Load {
  const acked = new Map(tenants.map((t) => [t.id, [] as string[]]));
  const failures = new Map(tenants.map((t) => [t.id, [] as unknown[]]));
  const retries = new Map(tenants.map((t) => [t.id, 0]));
  const latencies = new Map(tenants.map((t) => [t.id, new Map<string, number[]>()]));
  const phase = { now: 'warm-up' };
  let running = true;
  const worker = async (t: Tenant) => {
    while (running) {
      const id = randomUUID();
      const t0 = performance.now();
      try {
        await op(t, id, () => (acked.get(t.id) as string[]).push(id));
        const l = latencies.get(t.id) as Map<string, number[]>;
        if (!l.has(phase.now)) l.set(phase.now, []);
        l.get(phase.now)?.push(performance.now() - t0);
      } catch (err) {
        if ((err as { code?: string }).code === 'PLACEMENT_PAUSED') retries.set(t.id, (retries.get(t.id) ?? 0) + 1);
        else (failures.get(t.id) as unknown[]).push(err);
      }
      if (paceMs > 0) await sleep(paceMs);
    }
  };
  const all = tenants.flatMap((t) => [worker(t), worker(t)]);
  return {
    acked,
    failures,
    retries,
    latencies,
    phase,
    async stop() {
      running = false;
      await Promise.all(all);
    },
  };
}

/**
 * Runs `argv` (a move of acme) while acme and globex call `op` in a loop: 1 s warm-up (pools
 * open), 1.5 s baseline, the move, 1.5 s after. Prints globex's p99 in each phase.
 */
async function moveUnderLoad(
  op: (app: App) => (t: Tenant, id: string, ack: () => void) => Promise<void>,
  argv: string[],
  paceMs = 0,
): Promise<{ r: CliRun; load: Load }> {
  const app = new App();
  expect(await app.registry.listening()).toBe(true);
  const load = startLoad([await issuer.tenant('acme'), await issuer.tenant('globex')], op(app), paceMs);
  await sleep(1000);
  load.phase.now = 'before';
  await sleep(1500);
  load.phase.now = 'during';
  const r = await runCli(argv, {}, 280_000);
  load.phase.now = 'after';
  await sleep(1500);
  await load.stop();
  await app.close();
  const g = load.latencies.get('globex') as Map<string, number[]>;
  const phase = (p: string) => `${p} ${p99(g.get(p)).toFixed(1)} ms (${g.get(p)?.length ?? 0} calls)`;
  console.log(
    `[move ${argv[4]}] globex p99 ${['before', 'during', 'after'].map(phase).join(', ')}; acme: ${load.acked.get('acme')?.length} acknowledged writes, ${load.retries.get('acme')} retryable PLACEMENT_PAUSED answers`,
  );
  return { r, load };
}

let collection: string;
const qdrant = qdrantRest;

async function qdrantCollection(name: string): Promise<void> {
  await qdrant('PUT', `/collections/${name}`, { vectors: { size: 4, distance: 'Cosine' } });
  await qdrant('PUT', `/collections/${name}/index?wait=true`, {
    field_name: 'tenant_id',
    field_schema: { type: 'keyword', is_tenant: true },
  });
}

/** A tenant's points in a collection (raw REST): ids, payloads and vectors, by id. */
async function pointsOf(name: string, tenant: string): Promise<unknown[]> {
  const r = await qdrant('POST', `/collections/${name}/points/scroll`, {
    filter: { must: [{ key: 'tenant_id', match: { value: tenant } }] },
    limit: 1000,
    with_payload: true,
    with_vector: true,
  });
  // Vectors to 6 significant digits: Cosine vectors are normalised again on upsert (last-bit noise).
  return ((r.result as { points: { id: number; vector: number[] }[] }).points ?? [])
    .sort((a, b) => a.id - b.id)
    .map((p) => ({ ...p, vector: p.vector.map((x) => Number(x.toPrecision(6))) }));
}

/** `tenant move` argv: tenant, store, tier, target (or undefined), then more flags; always with the config. */
const mv = (tenant: string, store: string, to: string, target?: string, ...more: string[]) =>
  fx.mv(tenant, store, to, target, ...more);

const p99 = (xs: number[] = []) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] as number) : Number.NaN;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let issuer: Awaited<ReturnType<typeof createTestIssuer>>;

beforeAll(async () => {
  collection = `movecli_${Date.now().toString(36)}`;
  fx = await createMoveFixture('move', TENANTS, () => ({
    qdrant: {
      url: inject('qdrantUrl'),
      collection,
      ...(inject('qdrantApiKey') ? { apiKeyEnv: 'MOVE_TEST_QDRANT_KEY' } : {}),
    },
  }));
  ({ auditDir, db, su, bindingKey, s3, shared } = fx);
  await fx.seedRows(TENANTS);
  issuer = await createTestIssuer();
  await fx.seedObjects(TENANTS, 12);
  // Beside acme's prefix, never touched.
  await s3.send(new PutObjectCommand({ Bucket: shared, Key: 'tenants/acme-archive/keep.txt', Body: 'not acme' }));
  await qdrantCollection(collection);
  await qdrant('PUT', `/collections/${collection}/points?wait=true`, {
    points: TENANTS.flatMap((t, ti) =>
      [1, 2, 3, 4, 5].map((i) => ({
        id: ti * 100 + i,
        vector: [ti + 1, i, 0.5, 1],
        payload: { tenant_id: t, text: `${t} doc ${i}`, nested: { n: i, tags: ['a', t] } },
      })),
    ),
  });
  process.env.MOVE_TEST_QDRANT_KEY = inject('qdrantApiKey');
});
afterAll(async () => {
  for (const name of dedicated) await su?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
  for (const b of buckets) await deleteTestBucket(s3, b);
  await fx?.close();
});

describe('tenantscope tenant move --store postgres', () => {
  it(
    'moves acme to its own database under load: 0 failed globex calls, 0 lost acme writes, data identical, old place empty, audited',
    async () => {
      const target = await provision(`${db.name}_acme`);
      const acmeBefore = await rowsOf(db.name, 'acme');
      const globexBefore = await rowsOf(db.name, 'globex');
      const { r, load } = await moveUnderLoad(
        pgOp,
        mv('acme', 'postgres', 'dedicated', target, '--settle-ms', '600', '--json'),
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        status: 'moved',
        from: { tier: 'shared' },
        to: { tier: 'dedicated', target },
        recordWritten: true,
      });
      expect(load.failures.get('globex')).toEqual([]);
      expect(load.retries.get('globex')).toBe(0);
      expect(load.failures.get('acme')).toEqual([]);
      expect(load.latencies.get('globex')?.get('during')?.length ?? 0).toBeGreaterThan(0);

      // Acme: everything that was there plus every acknowledged write, in its own database; nothing more.
      const moved = await rowsOf(target, 'acme');
      for (const [k, v] of acmeBefore) expect(moved.get(k), k).toBe(v);
      const ackedIds = load.acked.get('acme') as string[];
      expect(ackedIds.length).toBeGreaterThan(0);
      const lost = ackedIds.filter((id) => !moved.has(`customers:${id}`));
      expect(lost).toEqual([]);
      expect(moved.size).toBe(acmeBefore.size + ackedIds.length);
      // The old place is empty; globex's rows are untouched (plus its own writes).
      expect((await rowsOf(db.name, 'acme')).size).toBe(0);
      const globexAfter = await rowsOf(db.name, 'globex');
      for (const [k, v] of globexBefore) expect(globexAfter.get(k)).toBe(v);
      expect(globexAfter.size).toBe(globexBefore.size + (load.acked.get('globex') as string[]).length);
      expect((await rowsOf(target, 'globex')).size).toBe(0);

      // Recorded once, in acme's chain, and the chain verifies.
      const events = await moveEvents('acme');
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        event_type: 'placement_moved',
        details: { store: 'postgres', to: `dedicated:${target}`, old_after: 0 },
      });
      expect((await verifyJsonl({ dir: auditDir, tenant: 'acme', anchors: NO_ANCHORS })).ok).toBe(true);

      // A rerun is a no-op and records nothing new.
      const again = await runCli(mv('acme', 'postgres', 'dedicated', target, '--json'));
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout).status).toBe('already-there');
      expect(await moveEvents('acme')).toHaveLength(1);
    },
    SLOW,
  );

  it(
    'killed with SIGKILL while paused, and again after the switch, a rerun finishes the move: data identical, old place empty, one record',
    async () => {
      const target = await provision(`${db.name}_initech`);
      const before = await rowsOf(db.name, 'initech');
      const args = mv('initech', 'postgres', 'dedicated', target, '--settle-ms', '100', '--json');
      for (const point of ['after-pause', 'after-switch']) {
        // Each kill lands one step further; the runs between resume where the last one died.
        const killed = await runCli(args, { TENANTSCOPE_TEST_KILL_AT: point });
        expect(killed.code, `${point}: ${killed.stderr}`).toBe(null);
      }
      const done = await runCli(args);
      expect(done.stderr).toBe('');
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout).status).toBe('moved');
      expect(await rowsOf(target, 'initech')).toEqual(before);
      expect((await rowsOf(db.name, 'initech')).size).toBe(0);
      expect(await moveEvents('initech')).toHaveLength(1);
      expect((await verifyJsonl({ dir: auditDir, tenant: 'initech', anchors: NO_ANCHORS })).ok).toBe(true);
      // And back to shared.
      const back = await runCli(mv('initech', 'postgres', 'shared', undefined, '--settle-ms', '100', '--json'));
      expect(back.code, back.stderr).toBe(0);
      expect(await rowsOf(db.name, 'initech')).toEqual(before);
      expect((await rowsOf(target, 'initech')).size).toBe(0);
    },
    SLOW,
  );

  it(
    'a move killed while paused is rolled back by --rollback: the tenant stays, the new copy is deleted; a wrong destination exits 2',
    async () => {
      const target = await provision(`${db.name}_hooli`);
      const before = await rowsOf(db.name, 'hooli');
      const args = mv('hooli', 'postgres', 'dedicated', target, '--settle-ms', '100');
      expect((await runCli(args, { TENANTSCOPE_TEST_KILL_AT: 'after-pause' })).code).toBe(null);
      const other = await runCli(mv('hooli', 'postgres', 'dedicated', `${target}x`));
      expect(other.code).toBe(2);
      expect(other.stderr).toContain('--rollback');
      const rb = await runCli([...args, '--rollback', '--json']);
      expect(rb.code, rb.stderr).toBe(0);
      expect(JSON.parse(rb.stdout).status).toBe('rolled-back');
      expect(await rowsOf(db.name, 'hooli')).toEqual(before);
      expect((await rowsOf(target, 'hooli')).size).toBe(0);
      const app = new App();
      const hooli = await issuer.tenant('hooli');
      // Not paused any more (a paused call would wait 5 s, then fail): active, on the shared tier.
      expect(await app.registry.get('hooli', 'postgres')).toMatchObject({ state: 'active', tier: 'shared' });
      await (await app.db(hooli)).query('SELECT 1');
      await app.close();
      expect((await moveEvents('hooli')).map((e) => e.event_type)).toEqual(['placement_move_rolled_back']);
    },
    SLOW,
  );

  it(
    'bad input exits 2 and changes nothing: an unknown tenant, a target database without the tables',
    async () => {
      const before = await rowsOf(db.name, 'globex');
      const cases: [string[], string][] = [[mv('umbrella', 'postgres', 'dedicated', 'x_db'), 'CLI_UNKNOWN_TENANT']];
      for (const [args, text] of cases) {
        const r = await runCli(args);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(text);
      }
      const empty = `${db.name}_empty`;
      await su.query(`CREATE DATABASE ${empty} OWNER ${db.ownerRole}`);
      dedicated.push(empty);
      const r = await runCli(mv('globex', 'postgres', 'dedicated', empty));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('no table');
      expect(await rowsOf(db.name, 'globex')).toEqual(before);
      // The failed move left globex on the shared tier, not paused.
      const app = new App();
      await (await app.db(await issuer.tenant('globex'))).query('SELECT 1');
      await app.close();
    },
    SLOW,
  );
});

describe('tenantscope tenant move --store s3', () => {
  it(
    "moves acme's objects to its own bucket under load: 0 failed globex calls, 0 lost acme writes, bodies identical, old prefix empty",
    async () => {
      const own = await createTestBucket(s3, 'move-acme');
      buckets.push(own);
      const acmeBefore = await objectsOf(shared, 'acme');
      const globexBefore = await objectsOf(shared, 'globex');
      const { r, load } = await moveUnderLoad(
        s3Op,
        mv('acme', 's3', 'dedicated', own, '--settle-ms', '600', '--json'),
        50,
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        status: 'moved',
        to: { tier: 'dedicated', target: own },
        recordWritten: true,
      });
      expect(load.failures.get('globex')).toEqual([]);
      expect(load.retries.get('globex')).toBe(0);
      expect(load.failures.get('acme')).toEqual([]);
      const moved = await objectsOf(own, 'acme');
      for (const [k, v] of acmeBefore) expect(moved.get(k), k).toBe(v);
      const acked = load.acked.get('acme') as string[];
      expect(acked.length).toBeGreaterThan(0);
      expect(acked.filter((id) => !moved.has(`tenants/acme/load/${id}.txt`))).toEqual([]);
      expect(moved.size).toBe(acmeBefore.size + acked.length);
      expect((await objectsOf(shared, 'acme')).size).toBe(0);
      const globexAfter = await objectsOf(shared, 'globex');
      for (const [k, v] of globexBefore) expect(globexAfter.get(k)).toBe(v);
      expect(globexAfter.size).toBe(globexBefore.size + (load.acked.get('globex') as string[]).length);
      expect((await objectsOf(shared, 'acme-archive')).size).toBe(1);
      const events = (await moveEvents('acme')).filter((e) => (e.details as { store?: string }).store === 's3');
      expect(events).toHaveLength(1);
      expect((await verifyJsonl({ dir: auditDir, tenant: 'acme', anchors: NO_ANCHORS })).ok).toBe(true);
    },
    SLOW,
  );

  it(
    'killed with SIGKILL after the switch, a rerun deletes the old copy and records the move once',
    async () => {
      const own = await createTestBucket(s3, 'move-hooli');
      buckets.push(own);
      const before = await objectsOf(shared, 'hooli');
      const args = mv('hooli', 's3', 'dedicated', own, '--settle-ms', '100', '--json');
      expect((await runCli(args, { TENANTSCOPE_TEST_KILL_AT: 'after-switch' })).code).toBe(null);
      const done = await runCli(args);
      expect(done.code, done.stderr).toBe(0);
      expect(await objectsOf(own, 'hooli')).toEqual(before);
      expect((await objectsOf(shared, 'hooli')).size).toBe(0);
      expect((await moveEvents('hooli')).filter((e) => e.event_type === 'placement_moved')).toHaveLength(1);
    },
    SLOW,
  );
});

describe('tenantscope tenant move --store qdrant', () => {
  it(
    "moves acme's points to its own collection: points identical, none left in the shared one, globex untouched, audited",
    async () => {
      const own = `${collection}_acme`;
      await qdrantCollection(own);
      const before = await pointsOf(collection, 'acme');
      const globex = await pointsOf(collection, 'globex');
      expect(before.length).toBe(5);
      const r = await runCli(mv('acme', 'qdrant', 'dedicated', own, '--settle-ms', '100', '--json'));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: 'moved', to: { tier: 'dedicated', target: own } });
      expect(await pointsOf(own, 'acme')).toEqual(before);
      expect(await pointsOf(collection, 'acme')).toEqual([]);
      expect(await pointsOf(collection, 'globex')).toEqual(globex);
      expect(await pointsOf(own, 'globex')).toEqual([]);
      const events = (await moveEvents('acme')).filter((e) => (e.details as { store?: string }).store === 'qdrant');
      expect(events).toHaveLength(1);
      expect((await verifyJsonl({ dir: auditDir, tenant: 'acme', anchors: NO_ANCHORS })).ok).toBe(true);
    },
    SLOW,
  );
});
