/**
 * Benchmark: write speed of tenant-table ids that carry no cross-tenant signal, against the shared
 * `bigserial` they replace (the raw baseline, which leaks every tenant's insert count).
 * Every variant inserts through the same scoped pool (app role, RLS, bound per statement) into a
 * table of the same shape, at the same concurrency, for the same time, in interleaved rounds after
 * a warm-up of each. Prints rows/s per variant, the ratio to bigserial, and the primary-key index size.
 * Variants: bigserial; tenantscope.uuidv7() (SQL, stateless; the default we chose); gen_random_uuid()
 * (v4); uuidv7() (PostgreSQL 18 built-in, if present); a per-tenant counter (upsert on a counter row).
 * Uses DATABASE_URL (a superuser URL) when set, else testkit's resolvePostgres (embedded).
 * Env: BENCH_SECONDS (per variant per round, default 2), BENCH_ROUNDS (default 3), BENCH_CONCURRENCY (default 16).
 */
import { performance } from 'node:perf_hooks';
import { installSideChannelGuards, installTenantScope, scopedPool, tenantTableSql } from '@tenantscope/postgres';
import { createTestIssuer, resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'wonka', 'stark', 'wayne'];

const resolved = process.env.DATABASE_URL
  ? { url: process.env.DATABASE_URL, describe: 'DATABASE_URL', stop: async () => {} }
  : await resolvePostgres();
console.log(`postgres: ${resolved.describe}`);
const db = await createScratchDatabase(resolved.url, 'benchids');
const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
const su = new pg.Client({ connectionString: db.superUrl });
await su.connect();
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

try {
  const version = Number(
    (await su.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v,
  );
  console.log(`server_version_num ${version}`);
  const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
  await installSideChannelGuards(su);
  // The per-tenant counter: one row per tenant, advanced under its row lock until commit.
  await owner.query(`
    CREATE TABLE id_counters (tenant_id text PRIMARY KEY, last bigint NOT NULL);
    CREATE FUNCTION next_tenant_id() RETURNS bigint LANGUAGE sql VOLATILE SECURITY DEFINER
      SET search_path = pg_catalog, public AS $$
      INSERT INTO public.id_counters AS c (tenant_id, last) VALUES (tenantscope.current_tenant_id(), 1)
      ON CONFLICT (tenant_id) DO UPDATE SET last = c.last + 1 RETURNING last $$;
    GRANT EXECUTE ON FUNCTION next_tenant_id() TO ${db.appRole};`);
  const variants: { name: string; ddl: string; id?: boolean; seq?: boolean }[] = [
    { name: 'bigserial (baseline, leaks)', ddl: 'id bigserial PRIMARY KEY', seq: true },
    { name: 'tenantscope.uuidv7()', ddl: 'id uuid PRIMARY KEY', id: true },
    { name: 'gen_random_uuid() (v4)', ddl: 'id uuid PRIMARY KEY DEFAULT gen_random_uuid()' },
    ...(version >= 180000 ? [{ name: 'uuidv7() built-in (PG 18)', ddl: 'id uuid PRIMARY KEY DEFAULT uuidv7()' }] : []),
    {
      name: 'per-tenant counter',
      ddl: 'id bigint NOT NULL DEFAULT next_tenant_id(), PRIMARY KEY (tenant_id, id)',
    },
  ];
  const tables = variants.map((_, i) => `ids_${i}`);
  for (const [i, v] of variants.entries()) {
    const t = tables[i] as string;
    await owner.query(`CREATE TABLE ${t} (${v.ddl}, tenant_id text NOT NULL, body text NOT NULL)`);
    await owner.query(
      tenantTableSql({
        table: t,
        idColumn: v.id ? 'id' : undefined,
        grantTo: db.appRole,
        privileges: ['SELECT', 'INSERT'],
        allowSharedSequence: v.seq,
      }),
    );
    if (v.seq) await owner.query(`GRANT USAGE ON SEQUENCE ${t}_id_seq TO ${db.appRole}`);
  }
  const scoped = scopedPool({ connectionString: db.appUrl, max: CONCURRENCY }, { bindingKey });
  const issuer = await createTestIssuer();
  const handles = await Promise.all(TENANTS.map(async (t) => scoped.forTenant(await issuer.tenant(t))));

  async function run(table: string, seconds: number): Promise<number> {
    let n = 0;
    const started = performance.now();
    const end = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, w) => {
        const h = handles[w % handles.length] as (typeof handles)[number];
        while (performance.now() < end) {
          await h.query(`INSERT INTO ${table} (body) VALUES ($1)`, ['a note of ordinary length, about forty bytes']);
          n++;
        }
      }),
    );
    return n / ((performance.now() - started) / 1000);
  }

  for (const t of tables) await run(t, Math.max(1, SECONDS / 2)); // warm-up: connections, plans, caches
  const rates: number[][] = variants.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    // interleaved, and the order rotates each round so no variant always runs first
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      rates[i]?.push(await run(tables[i] as string, SECONDS));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const base = median(rates[0] as number[]);
  console.log(
    `\ninserts/s through scopedPool.query (app role, RLS), concurrency ${CONCURRENCY}, ${TENANTS.length} tenants, ` +
      `${ROUNDS} interleaved rounds of ${SECONDS}s (median):`,
  );
  for (const [i, v] of variants.entries()) {
    const t = tables[i] as string;
    const m = median(rates[i] as number[]);
    const idx = await su.query<{ rows: string; size: string }>(
      `SELECT (SELECT count(*) FROM ${t})::text AS rows, pg_size_pretty(pg_relation_size('${t}_pkey')) AS size`,
    );
    console.log(
      `  ${v.name.padEnd(30)} ${fmt(m).padStart(8)} rows/s   ratio to bigserial ${(m / base).toFixed(2)}   ` +
        `rounds [${(rates[i] as number[]).map(fmt).join(', ')}]   pkey ${idx.rows[0]?.size} for ${fmt(Number(idx.rows[0]?.rows))} rows`,
    );
  }
  await scoped.end();

  // 2. The id default alone: one server-side INSERT … SELECT of BULK rows per variant (superuser,
  // no commit per row), interleaved rounds. The per-tenant counter needs a bound tenant: not here.
  const BULK = Number(process.env.BENCH_BULK_ROWS ?? 100_000);
  const bulk = variants
    .map((v, i) => ({ v, t: tables[i] as string }))
    .filter((x) => !x.v.name.startsWith('per-tenant'));
  const bulkRates: number[][] = bulk.map(() => []);
  for (const b of bulk)
    await su.query(`INSERT INTO ${b.t} (tenant_id, body) SELECT 'warm', 'x' FROM generate_series(1, 10000)`);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < bulk.length; k++) {
      const i = (k + r) % bulk.length;
      const t0 = performance.now();
      await su.query(`INSERT INTO ${bulk[i]?.t} (tenant_id, body) SELECT 'bulk', 'x' FROM generate_series(1, ${BULK})`);
      bulkRates[i]?.push(BULK / ((performance.now() - t0) / 1000));
    }
  }
  const bulkBase = median(bulkRates[0] as number[]);
  console.log(`
the id default alone: INSERT … SELECT of ${fmt(BULK)} rows, ${ROUNDS} interleaved rounds (median):`);
  for (const [i, b] of bulk.entries()) {
    const m = median(bulkRates[i] as number[]);
    console.log(
      `  ${b.v.name.padEnd(30)} ${fmt(m).padStart(9)} rows/s   ratio to bigserial ${(m / bulkBase).toFixed(2)}   rounds [${(bulkRates[i] as number[]).map(fmt).join(', ')}]`,
    );
  }
} finally {
  await su.end();
  await owner.end();
  await db.drop();
  await resolved.stop();
}
