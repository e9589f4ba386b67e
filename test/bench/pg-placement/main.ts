/**
 * Benchmark: what placement costs per query, in one run, workloads interleaved round by round.
 *
 *   DATABASE_URL=<superuser URL> bash scripts/with-toolchain.sh node test/bench/pg-placement/main.ts
 *
 * TENANTS tenants (8) x ROWS rows (1000) in a shared RLS table, and each of the same tenants also in
 * a database of its own (provisionTenantDatabase, same rows). 16 in flight, point queries by id.
 * Same connection budget everywhere (BENCH_POOL, 16):
 * - raw: a plain pool of 16, explicit tenant predicate, no RLS (the baseline);
 * - shared, no resolver: scopedPool checkout path (the default, as before placement existed);
 * - shared, sync resolver answering shared (the per-operation resolution path);
 * - shared, async resolver answering shared (a registry lookup that is already cached);
 * - dedicated: a sync resolver sending each tenant to its own database, TENANTS pools of
 *   BENCH_POOL / TENANTS connections (the LRU holds them all);
 * - hot lanes (one per tenant), without and with the sync shared resolver.
 * Prints queries/s, p50, p99, client CPU µs per query and the ratio to raw and to "shared, no resolver".
 * Knobs: DATABASE_URL (default an embedded PostgreSQL), BENCH_TENANTS, BENCH_ROWS, BENCH_POOL,
 * BENCH_INFLIGHT (16), BENCH_SECONDS per workload and round (2), BENCH_ROUNDS (3; best round reported).
 */
import { performance } from 'node:perf_hooks';
import type { Tenant } from '@tenantscope/core';
import {
  dropTenantDatabase,
  installTenantScope,
  type PgPlacement,
  provisionTenantDatabase,
  type ScopedPool,
  scopedPool,
  tenantTableSql,
} from '@tenantscope/postgres';
import { createTestIssuer, resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const env = (name: string, d: number) => Number(process.env[name] ?? d);
const TENANTS = env('BENCH_TENANTS', 8);
const ROWS = env('BENCH_ROWS', 1000);
const POOL = env('BENCH_POOL', 16);
const INFLIGHT = env('BENCH_INFLIGHT', 16);
const SECONDS = env('BENCH_SECONDS', 2);
const ROUNDS = env('BENCH_ROUNDS', 3);

const firstErrors: string[] = [];

interface Row {
  qps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  errors: number;
}

/** INFLIGHT loops calling `one` for `seconds`; throughput, latency percentiles and this process's CPU per query. */
async function run(one: (n: number) => Promise<unknown>, seconds: number): Promise<Row> {
  const latencies: number[] = [];
  let n = 0;
  let errors = 0;
  const stopAt = performance.now() + seconds * 1000;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const loop = async () => {
    for (let t = performance.now(); t < stopAt; t = performance.now()) {
      await one(n++).catch((err: { code?: string; message?: string }) => {
        if (errors++ === 0) firstErrors.push(`${err?.code}: ${err?.message}`);
      });
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, loop));
  const cpu = process.cpuUsage(cpuBefore);
  const wall = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
  return {
    qps: latencies.length / wall,
    p50: at(0.5),
    p99: at(0.99),
    cpuUs: (cpu.user + cpu.system) / Math.max(1, latencies.length),
    errors,
  };
}

const pg_ = await resolvePostgres();
const db = await createScratchDatabase(pg_.url, 'benchplace');
const tenantDbs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];
try {
  console.log(`# PostgreSQL: ${pg_.describe}`);
  const t0 = performance.now();
  const ids = Array.from({ length: TENANTS }, (_, i) => `bp${i}`);
  const ddl = async (c: { query(text: string): Promise<unknown> }, withRaw = true) => {
    await c.query('CREATE TABLE IF NOT EXISTS items (id int NOT NULL, tenant_id text NOT NULL, v text NOT NULL)');
    await c.query(tenantTableSql({ table: 'items', indexColumns: ['id'], grantTo: db.appRole }));
    if (!withRaw) return;
    await c.query(
      'CREATE TABLE IF NOT EXISTS items_raw (id int NOT NULL, tenant_id text NOT NULL, v text NOT NULL, PRIMARY KEY (tenant_id, id))',
    );
    await c.query(`GRANT SELECT ON items_raw TO ${db.appRole}`);
  };
  const owner = new pg.Client({ connectionString: db.ownerUrl });
  await owner.connect();
  const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
  await ddl(owner);
  await owner.end();
  const seed = async (database: string, tenants: string[], tables = ['items', 'items_raw']) => {
    const u = new URL(db.superUrl);
    u.pathname = `/${database}`;
    const su = new pg.Client({ connectionString: u.toString() });
    await su.connect();
    for (const table of tables) {
      await su.query(
        `INSERT INTO ${table} (id, tenant_id, v) SELECT i, t, md5(t || i) FROM unnest($1::text[]) t, generate_series(1, $2) i`,
        [tenants, ROWS],
      );
    }
    await su.query('ANALYZE');
    await su.end();
  };
  await seed(db.name, ids);
  const urlOf = new Map<string, string>();
  for (const id of ids) {
    const database = `${db.name}_${id}`;
    tenantDbs.push(database);
    await provisionTenantDatabase({
      adminConnectionString: db.superUrl,
      tenant: id,
      database,
      bindingKey,
      appRole: db.appRole,
      ownerRole: db.ownerRole,
      setup: (c) => ddl(c, false),
    });
    await seed(database, [id], ['items']);
    const u = new URL(db.appUrl);
    u.pathname = `/${database}`;
    urlOf.set(id, u.toString());
  }
  console.log(
    `# ${TENANTS} tenants x ${ROWS} rows, shared and one database each; pool ${POOL}; ${INFLIGHT} in flight; ${SECONDS}s x ${ROUNDS} rounds; setup ${((performance.now() - t0) / 1000).toFixed(1)}s`,
  );

  const issuer = await createTestIssuer();
  const tenants: Tenant[] = await Promise.all(ids.map((id) => issuer.tenant(id)));
  const SHARED = { tier: 'shared' } as const;
  const dedicated = new Map<string, PgPlacement>(
    ids.map((id) => [id, { tier: 'dedicated', connectionString: urlOf.get(id) as string }]),
  );
  const mk = (extra: Record<string, unknown>): ScopedPool => {
    const p = scopedPool({ connectionString: db.appUrl, max: POOL }, { bindingKey, ...extra });
    closers.push(() => p.end());
    return p;
  };
  const raw = new pg.Pool({ connectionString: db.appUrl, max: POOL });
  closers.push(() => raw.end());
  const pick = (n: number) => {
    const t = tenants[(n * 7) % TENANTS] as Tenant;
    return { t, id: 1 + ((n * 7919) % ROWS) };
  };
  const scopedOne = (p: ScopedPool) => (n: number) => {
    const { t, id } = pick(n);
    return p.forTenant(t).query('SELECT v FROM items WHERE id = $1', [id]);
  };
  const hot = { maxTenants: TENANTS, promoteAfter: 5 };
  const workloads: [string, (n: number) => Promise<unknown>][] = [
    [
      `raw, pool ${POOL} (explicit tenant predicate, no RLS)`,
      (n) => {
        const { t, id } = pick(n);
        return raw.query('SELECT v FROM items_raw WHERE tenant_id = $1 AND id = $2', [t.id, id]);
      },
    ],
    ['shared, no resolver', scopedOne(mk({}))],
    ['shared, sync resolver', scopedOne(mk({ placement: () => SHARED }))],
    ['shared, async resolver', scopedOne(mk({ placement: async () => SHARED }))],
    [
      `dedicated, ${TENANTS} databases x ${Math.max(1, Math.floor(POOL / TENANTS))} connections`,
      scopedOne(
        mk({
          placement: (t: Tenant) => dedicated.get(t.id),
          maxTenantPools: TENANTS,
          tenantPoolMax: Math.max(1, Math.floor(POOL / TENANTS)),
        }),
      ),
    ],
    [`hot lanes (${TENANTS}), no resolver`, scopedOne(mk({ max: 1, hot }))],
    [`hot lanes (${TENANTS}), sync resolver`, scopedOne(mk({ max: 1, hot, placement: () => SHARED }))],
  ];
  // Warm-up: every workload, every tenant's connection and lane.
  for (const [, fn] of workloads) await run(fn, 1.5);
  const best = new Map<string, Row>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of r % 2 ? [...workloads].reverse() : workloads) {
      const row = await run(fn, SECONDS);
      const prev = best.get(name);
      if (!prev || row.qps > prev.qps) best.set(name, row);
    }
  }
  const rawQps = best.get(workloads[0]?.[0] as string)?.qps ?? 1;
  const baseQps = best.get('shared, no resolver')?.qps ?? 1;
  console.log('');
  console.log(
    '| workload | queries/s | p50 ms | p99 ms | ratio to raw | ratio to shared, no resolver | client CPU µs/query | errors |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [name] of workloads) {
    const b = best.get(name) as Row;
    console.log(
      `| ${name} | ${b.qps.toFixed(0)} | ${b.p50.toFixed(2)} | ${b.p99.toFixed(2)} | ${(b.qps / rawQps).toFixed(2)} | ${(b.qps / baseQps).toFixed(2)} | ${b.cpuUs.toFixed(0)} | ${b.errors} |`,
    );
  }
  if (firstErrors.length)
    console.log(`# first error of each workload that had one: ${[...new Set(firstErrors)].join('; ')}`);
} finally {
  for (const c of closers) await c().catch(() => undefined);
  for (const d of tenantDbs)
    await dropTenantDatabase({ adminConnectionString: db.superUrl, database: d }).catch(() => undefined);
  await db.drop();
  await pg_.stop();
}
