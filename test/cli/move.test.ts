/**
 * `tenantscope tenant move` through the real bin, in a child process, while an in-process load of
 * acme and globex calls runs through scoped adapters that resolve their placement through the
 * registry on every call. Checks: 0 failed globex calls, every acknowledged acme write present
 * after the move (0 lost), acme's data identical, the old place empty, the move recorded once in
 * acme's hash-chained audit stream and the chain verifies; a move killed with SIGKILL at a step is
 * finished (or rolled back) by a rerun. Prints globex's p99 before, during and after the move.
 */
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { verifyJsonl } from '@tenantscope/audit';
import type { Tenant } from '@tenantscope/core';
import {
  databaseUrl,
  installTenantScope,
  type PlacementRegistry,
  pg,
  placementRegistry,
  type ScopedPool,
  scopedPool,
  tenantTableSql,
} from '@tenantscope/postgres';
import { type ScopedS3, scopedS3 } from '@tenantscope/s3';
import { createTestBucket, createTestIssuer, deleteTestBucket, s3Client } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { directUrl } from '../../packages/postgres/src/testing/fixture.ts';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { auditEvents, type CliRun, qdrantRest, runCli, writeJson } from './helpers.ts';

const SLOW = 300_000;
const NO_ANCHORS = { record: async () => {}, list: async () => [] };
const TENANTS = ['acme', 'globex', 'initech', 'hooli'];
const SCHEMA = 'tenantscope_placement';
let dir: string;
let db: ScratchDatabase;
let su: pg.Client;
let bindingKey: Buffer;
let config: string;
let auditDir: string;
const dedicated: string[] = [];
let s3: S3Client;
let shared: string;
const buckets: string[] = [];

/** Every object of a tenant under its prefix in a bucket (raw client): key -> sha256 of the body. */
async function objectsOf(bucket: string, tenant: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `tenants/${tenant}/`, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      const body = await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      out.set(o.Key as string, createHash('sha256').update(body).digest('hex'));
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

const DDL = `
  CREATE TABLE customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, name text, email text);
  CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id text NOT NULL, customer_id uuid REFERENCES customers (id),
                         amount numeric(30, 10) NOT NULL, meta jsonb);
`;

/** A tenant's own database on the same server, set up the way the app's migrations would (same key, same tables). */
async function provision(name: string): Promise<string> {
  await su.query(`CREATE DATABASE ${name} OWNER ${db.ownerRole}`);
  dedicated.push(name);
  await su.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC; GRANT CONNECT ON DATABASE ${name} TO ${db.appRole}`);
  const suThere = new pg.Client({ connectionString: databaseUrl(db.superUrl, name) });
  await suThere.connect();
  await suThere.query(`ALTER SCHEMA public OWNER TO ${db.ownerRole}`);
  await suThere.end();
  const owner = new pg.Pool({ connectionString: databaseUrl(db.ownerUrl, name), max: 1 });
  await installTenantScope(owner, { appRole: db.appRole, bindingKey });
  await owner.query(DDL);
  for (const t of ['customers', 'invoices'])
    await owner.query(tenantTableSql({ table: t, idColumn: 'id', grantTo: db.appRole }));
  await owner.end();
  return name;
}

/** Every row of a tenant in one database, read by the superuser, as a map id -> row text. */
async function rowsOf(database: string, tenant: string): Promise<Map<string, string>> {
  const c = new pg.Client({ connectionString: databaseUrl(db.superUrl, database) });
  await c.connect();
  try {
    const out = new Map<string, string>();
    for (const t of ['customers', 'invoices']) {
      const r = await c.query<{ id: string; j: string }>(
        `SELECT id, to_jsonb(x)::text AS j FROM ${t} x WHERE tenant_id = $1`,
        [tenant],
      );
      for (const row of r.rows) out.set(`${t}:${row.id}`, row.j);
    }
    return out;
  } finally {
    await c.end();
  }
}

async function seed(tenants: string[]): Promise<void> {
  for (const t of tenants) {
    for (let i = 0; i < 30; i++) {
      const c = randomUUID();
      await su.query('INSERT INTO customers VALUES ($1, $2, $3, $4, $5)', [
        c,
        t,
        `s${i % 5}`,
        `${t} name ${i}`,
        `${t}${i}@example.test`,
      ]);
      await su.query('INSERT INTO invoices VALUES ($1, $2, $3, $4, $5)', [
        randomUUID(),
        t,
        c,
        `12345678901234567890.${String(i).padStart(10, '0')}`,
        JSON.stringify({ i, big: 2 ** 60 + i, s: "quote ' and \\ backslash" }),
      ]);
    }
  }
}

const moveEvents = (tenant: string) =>
  auditEvents(auditDir, tenant, (e) => String(e.event_type).startsWith('placement_'));

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
const mv = (tenant: string, store: string, to: string, target?: string, ...more: string[]) => [
  'tenant',
  'move',
  tenant,
  '--store',
  store,
  '--to',
  to,
  ...(target === undefined ? [] : ['--target', target]),
  '--config',
  config,
  ...more,
];

const p99 = (xs: number[] = []) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] as number) : Number.NaN;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let issuer: Awaited<ReturnType<typeof createTestIssuer>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsmove-'));
  auditDir = join(dir, 'audit');
  db = await createScratchDatabase(inject('databaseUrl'), 'move');
  su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  ({ bindingKey } = await installTenantScope(owner, { appRole: db.appRole }));
  await owner.query(DDL);
  for (const t of ['customers', 'invoices'])
    await owner.query(tenantTableSql({ table: t, idColumn: 'id', grantTo: db.appRole }));
  // The registry: created by the operator (the CLI does it too), read by the app role.
  const reg = placementRegistry({ pool: owner, schema: SCHEMA });
  await reg.migrate();
  await owner.query(
    `GRANT USAGE ON SCHEMA ${SCHEMA} TO ${db.appRole}; GRANT SELECT ON ${SCHEMA}.placements TO ${db.appRole}`,
  );
  await owner.end();
  await seed(TENANTS);
  issuer = await createTestIssuer();
  const conn = inject('s3');
  s3 = s3Client(conn);
  shared = await createTestBucket(s3, 'move-shared');
  buckets.push(shared);
  for (const t of TENANTS) {
    for (let i = 0; i < 12; i++) {
      await s3.send(
        new PutObjectCommand({
          Bucket: shared,
          Key: `tenants/${t}/docs/file ${i} ü.txt`,
          Body: `${t} body ${i}`.repeat(i + 1),
        }),
      );
    }
  }
  // Beside acme's prefix, never touched.
  await s3.send(new PutObjectCommand({ Bucket: shared, Key: 'tenants/acme-archive/keep.txt', Body: 'not acme' }));
  collection = `movecli_${Date.now().toString(36)}`;
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
  process.env.MOVE_TEST_S3_KEY = conn.accessKeyId;
  process.env.MOVE_TEST_S3_SECRET = conn.secretAccessKey;
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: TENANTS,
      postgres: { url: db.ownerUrl, tables: [{ name: 'invoices' }, { name: 'customers' }] },
      qdrant: {
        url: inject('qdrantUrl'),
        collection,
        ...(inject('qdrantApiKey') ? { apiKeyEnv: 'MOVE_TEST_QDRANT_KEY' } : {}),
      },
      s3: {
        endpoint: inject('s3').endpoint,
        region: inject('s3').region,
        bucket: shared,
        accessKeyIdEnv: 'MOVE_TEST_S3_KEY',
        secretAccessKeyEnv: 'MOVE_TEST_S3_SECRET',
      },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'ops@example.test',
    },
  });
});
afterAll(async () => {
  for (const name of dedicated) await su?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
  for (const b of buckets) await deleteTestBucket(s3, b);
  await su?.end();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
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
