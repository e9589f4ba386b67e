/**
 * What the audit sink's pooler mode costs: durable hash-chained appends at concurrency 16 through
 * PostgresAuditSink, (a) on a pool that logs in as the writer role (one round trip per batch, as a
 * direct `setupPostgresAudit` with startup options does) against (b) a pool that logs in as the
 * admin user with `role: <writer>` (BEGIN + SET LOCAL ROLE + SET LOCAL synchronous_commit, append,
 * COMMIT: what `pooler: 'transaction'` does). Same server URL, same pool size (8), same sink
 * options; a warm-up of each side, then interleaved rounds; prints both rates and the ratio.
 * Run it once with DATABASE_URL at PgBouncer and once at PostgreSQL itself.
 * Env: DATABASE_URL (superuser; else embedded), BENCH_SECONDS (per round, default 3), BENCH_ROUNDS (default 3).
 */
import { performance } from 'node:perf_hooks';
import { PostgresAuditSink } from '@tenantscope/audit/postgres';
import { resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { createAuditTestDb, sampleEvent } from '../../audit/pg.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 16;

const resolved = await resolvePostgres();
console.log(`postgres: ${resolved.describe}`);
const db = await createAuditTestDb(resolved.url, 'poolerbench', { poolSize: 8 });
const adminPool = new pg.Pool({ connectionString: db.urls.admin, max: 8 });
adminPool.on('error', () => undefined);
const sides = {
  'writer login (direct mode)': new PostgresAuditSink({ pool: db.writer }),
  'admin login + SET LOCAL ROLE (pooler mode)': new PostgresAuditSink({ pool: adminPool, role: db.roles.writer }),
};

async function rate(sink: PostgresAuditSink, seconds: number): Promise<number> {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) await sink.write(sampleEvent(`t${n % 50}`, n++));
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

try {
  for (const sink of Object.values(sides)) await rate(sink, 1); // warm-up
  const totals: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? Object.entries(sides) : Object.entries(sides).reverse();
    for (const [name, sink] of order) totals[name]?.push(await rate(sink, SECONDS));
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const [direct, pooled] = Object.keys(sides).map((k) => mean(totals[k] as number[])) as [number, number];
  for (const [name, xs] of Object.entries(totals)) {
    console.log(`${name}: ${Math.round(mean(xs))} events/s (rounds: ${xs.map((x) => Math.round(x)).join(', ')})`);
  }
  console.log(`ratio pooler mode / direct mode: ${(pooled / direct).toFixed(2)}`);
} finally {
  await Promise.all(Object.values(sides).map((s) => s.close()));
  await adminPool.end();
  await db.close();
  await resolved.stop();
}
