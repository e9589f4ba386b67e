/**
 * Benchmark: the cost of the move-fence check in `tenantscope.bind()`.
 *
 *   bash scripts/with-toolchain.sh node test/bench/pg-fence/main.ts
 *
 * Our path is the installed `tenantscope.bind(token)`; its baseline is the same function with the
 * fence check (read-only test, shared advisory try-lock, fence-row probe) cut out, installed beside
 * it as `tenantscope.bind_nofence` from the installed source, so nothing else differs. Both run
 * as the app role with the same token, in the same database, with full warm-up on both sides and
 * interleaved rounds:
 * - client: each call its own implicit transaction (as every statement binds), BENCH_INFLIGHT (16)
 *   pipelined on one connection per side, BENCH_SECONDS (2) per round: calls/s and µs per call;
 * - server: BENCH_CALLS (20000) calls in a DO loop, one transaction (server CPU only; the shared
 *   key is taken once there and re-counted after): µs per call.
 * Env: DATABASE_URL (a superuser URL; default an embedded PostgreSQL), BENCH_ROUNDS (6).
 */
import { performance } from 'node:perf_hooks';
import { installTenantScope } from '@tenantscope/postgres';
import { resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { clientToken } from '../../../packages/postgres/src/binding.ts';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const num = (name: string, d: number) => {
  const v = process.env[name];
  return v ? Number(v) : d;
};
const ROUNDS = num('BENCH_ROUNDS', 6);
const SECONDS = num('BENCH_SECONDS', 2);
const INFLIGHT = num('BENCH_INFLIGHT', 16);
const CALLS = num('BENCH_CALLS', 20_000);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Calls/s of `SELECT <fn>($1)`, INFLIGHT at a time on one pipelined connection, for SECONDS. */
async function clientRound(c: pg.Client, fn: string, token: () => string): Promise<number> {
  const until = performance.now() + SECONDS * 1000;
  let n = 0;
  const worker = async () => {
    while (performance.now() < until) {
      await c.query(`SELECT ${fn}($1)`, [token()]);
      n++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/** Server µs per call of `<fn>(token)` in a DO loop. */
async function serverRound(c: pg.Client, fn: string, token: string): Promise<number> {
  let us = Number.NaN;
  const onNotice = (m: { message?: string }) => {
    us = Number(m.message);
  };
  c.on('notice', onNotice);
  try {
    await c.query(`DO $$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN
      FOR i IN 1..${CALLS} LOOP PERFORM ${fn}('${token}'); END LOOP;
      RAISE NOTICE '%', extract(epoch from clock_timestamp() - t0) * 1000000 / ${CALLS}; END $$`);
  } finally {
    c.off('notice', onNotice);
  }
  return us;
}

async function main() {
  const pgs = await resolvePostgres();
  console.log(`# PostgreSQL: ${pgs.describe}`);
  const db = await createScratchDatabase(pgs.url, 'benchfence');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
  const clients: pg.Client[] = [];
  try {
    const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
    // The baseline: the installed bind() without its fence check.
    const def = (
      await owner.query<{ d: string }>(`SELECT pg_get_functiondef('tenantscope.bind(text)'::regprocedure) AS d`)
    ).rows[0]?.d as string;
    const stripped = def
      .replace(/\n\s*IF pg_catalog\.current_setting\('transaction_read_only'\)[\s\S]*?END IF;\s*END IF;/, '')
      .replace('tenantscope.bind(token text)', 'tenantscope.bind_nofence(token text)');
    if (stripped === def || /tenantscope\.fence|advisory/.test(stripped) || !/set_config/.test(stripped)) {
      throw new Error('could not derive the baseline bind() from the installed one');
    }
    await owner.query(stripped);
    await owner.query(`GRANT EXECUTE ON FUNCTION tenantscope.bind_nofence(text) TO ${db.appRole}`);
    const token = () => clientToken(bindingKey, 'app.tenant_id', 'acme');
    const sides = [
      ['fence', 'tenantscope.bind'],
      ['baseline', 'tenantscope.bind_nofence'],
    ] as const;
    const conn = async () => {
      const c = new pg.Client({ connectionString: db.appUrl, pipeline: true } as pg.ClientConfig);
      await c.connect();
      clients.push(c);
      return c;
    };
    const client = { fence: await conn(), baseline: await conn() };
    const v = await client.fence.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    console.log(
      `# server_version ${v.rows[0]?.v}; ${ROUNDS} interleaved rounds; client: ${INFLIGHT} in flight, ${SECONDS}s per round; server: ${CALLS} calls per round`,
    );
    // Full warm-up of both sides (plans, caches, token path).
    for (const [k, fn] of sides) {
      await clientRound(client[k], fn, token);
      await serverRound(client[k], fn, token());
    }
    const cps: Record<string, number[]> = { fence: [], baseline: [] };
    const srv: Record<string, number[]> = { fence: [], baseline: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: ReadonlyArray<(typeof sides)[number]> = r % 2 === 0 ? sides : [...sides].reverse();
      for (const [k, fn] of order) cps[k]?.push(await clientRound(client[k], fn, token));
      for (const [k, fn] of order) srv[k]?.push(await serverRound(client[k], fn, token()));
    }
    const f = (xs: number[] | undefined, d = 0) => (xs ?? []).map((x) => x.toFixed(d)).join(' ');
    console.log('\n| side | calls/s per round (client) | median calls/s | µs per call (server) | median µs |');
    console.log('| --- | --- | ---: | --- | ---: |');
    for (const [k] of sides) {
      console.log(
        `| ${k} | ${f(cps[k])} | ${median(cps[k] ?? []).toFixed(0)} | ${f(srv[k], 1)} | ${median(srv[k] ?? []).toFixed(1)} |`,
      );
    }
    const ratioC = median(cps.fence ?? []) / median(cps.baseline ?? []);
    const ratioS = median(srv.fence ?? []) / median(srv.baseline ?? []);
    console.log(
      `\n# client throughput fence/baseline: ${ratioC.toFixed(3)}; server time per call fence/baseline: ${ratioS.toFixed(3)} (+${(median(srv.fence ?? []) - median(srv.baseline ?? [])).toFixed(1)} µs)`,
    );
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await owner.end();
    await db.drop().catch(() => undefined);
    await pgs.stop();
  }
}

await main();
