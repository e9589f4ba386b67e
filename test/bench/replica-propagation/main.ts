/**
 * How fast a halt or a token revocation made through one replica is refused by another, against
 * the raw baseline that carries it: a bare NOTIFY on one connection until a LISTEN client on
 * another receives it. Ours: PostgresRevocationStore A writes (haltTenant / revokeToken), store B
 * (its own pool and LISTEN connection, a 60 s cache, so only the notification can tell it) is
 * asked every millisecond until it refuses. Same server, same database, one event at a time on
 * both sides; a warm-up of each, then interleaved rounds. Prints the median and p95 of each side
 * and the ratio of the medians. (test/postgres/replica-propagation.test.ts checks the behaviour;
 * this is where the speed is measured.)
 * Env: DATABASE_URL (superuser; else embedded), BENCH_EVENTS (per side per round, default 50),
 * BENCH_ROUNDS (default 4).
 */
import { performance } from 'node:perf_hooks';
import { PostgresRevocationStore } from '@tenantscope/postgres';
import { resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const schema = 'bench_state';

const resolved = process.env.DATABASE_URL
  ? { url: process.env.DATABASE_URL, describe: 'DATABASE_URL', stop: async () => {} }
  : await resolvePostgres();
console.log(`postgres: ${resolved.describe}`);
const db = await createScratchDatabase(resolved.url, 'benchnotify');
const poolA = new pg.Pool({ connectionString: db.superUrl, max: 2 });
const poolB = new pg.Pool({ connectionString: db.superUrl, max: 2 });
const storeA = new PostgresRevocationStore(poolA, { schema, cacheMs: 60_000, listenConnectionString: db.superUrl });
const storeB = new PostgresRevocationStore(poolB, { schema, cacheMs: 60_000, listenConnectionString: db.superUrl });
const rawA = new pg.Client({ connectionString: db.superUrl });
const rawB = new pg.Client({ connectionString: db.superUrl });
let seq = 0;

/** Raw: NOTIFY on A's connection, until B's LISTEN client has the payload. */
async function rawOnce(): Promise<number> {
  const payload = `e${seq++}`;
  const got = new Promise<void>((resolve) => {
    const on = (m: pg.Notification) => {
      if (m.payload !== payload) return;
      rawB.off('notification', on);
      resolve();
    };
    rawB.on('notification', on);
  });
  const t0 = performance.now();
  await rawA.query('SELECT pg_notify($1, $2)', ['bench_raw', payload]);
  await got;
  return performance.now() - t0;
}

/** Ours: a halt (odd) or a revocation (even) on A, until B refuses; B had cached "no" before. */
async function oursOnce(): Promise<number> {
  const i = seq++;
  const id = `t${i}`;
  const halt = i % 2 === 1;
  const check = () => (halt ? storeB.isTenantHalted(id) : storeB.isTokenRevoked(id));
  if (await check()) throw new Error('B refused before the write');
  const t0 = performance.now();
  if (halt) await storeA.haltTenant(id, 'bench');
  else await storeA.revokeToken(id, new Date(Date.now() + 60_000));
  while (!(await check())) {
    if (performance.now() - t0 > 10_000) throw new Error('B did not refuse within 10 s (no notification)');
    await new Promise((r) => setTimeout(r, 1));
  }
  return performance.now() - t0;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

try {
  await storeA.migrate();
  await rawA.connect();
  await rawB.connect();
  await rawB.query('LISTEN bench_raw');
  if (!(await storeA.listening(5000)) || !(await storeB.listening(5000))) throw new Error('stores are not listening');
  const sides = { 'raw NOTIFY -> LISTEN (baseline)': rawOnce, 'store A write -> store B refuses (ours)': oursOnce };
  const all: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  // warm-up of both
  for (const run of Object.values(sides)) for (let i = 0; i < 10; i++) await run();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, run] of Object.entries(sides)) {
      const xs: number[] = [];
      for (let i = 0; i < EVENTS; i++) xs.push(await run());
      all[name]?.push(...xs);
      console.log(`round ${r + 1} ${name}: median ${pct(xs, 0.5).toFixed(2)} ms`);
    }
  }
  const [raw, ours] = Object.values(all) as [number[], number[]];
  for (const [name, xs] of Object.entries(all))
    console.log(`${name}: median ${pct(xs, 0.5).toFixed(2)} ms, p95 ${pct(xs, 0.95).toFixed(2)} ms over ${xs.length}`);
  console.log(`ratio of medians (ours / raw): ${(pct(ours, 0.5) / pct(raw, 0.5)).toFixed(2)}`);
} finally {
  await storeA.close();
  await storeB.close();
  await rawA.end().catch(() => {});
  await rawB.end().catch(() => {});
  await poolA.end();
  await poolB.end();
  await db.drop();
  await resolved.stop();
}
