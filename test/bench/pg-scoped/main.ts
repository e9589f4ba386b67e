/**
 * Benchmark: tenant-scoped point queries vs a raw query with an explicit tenant predicate.
 *
 *   bash scripts/with-toolchain.sh node test/bench/pg-scoped/main.ts
 *
 * One run: 1,000 tenants x 1,000 rows (RLS table `items` and an identical table `items_raw`
 * without RLS), 16 in flight. Workloads, interleaved round by round:
 * - directly, EQUAL connection budget (BENCH_POOL, 10): raw on a pool of 10; scoped on 10 hot
 *   tenants with 10 hot lanes (the checkout pool closes its warm-up connections before timing);
 *   scoped on 1,000 random tenants with 10 multiplexed connections.
 * - directly, the DEFAULT budget (scoped up to 2 x BENCH_POOL: 10 multiplexed + 10 hot lanes).
 * - through PgBouncer (PGBOUNCER_URL, in front of the same server as DATABASE_URL), the same equal
 *   budget on both sides, scoped with `pooler: 'transaction'`: raw vs 10 hot tenants vs 1,000 random.
 * Prints throughput, p50, p99, the ratio to the raw baseline of the same transport, backends seen
 * during the run, and round trips per query counted by a TCP proxy (client->server turns).
 *
 * Env knobs: DATABASE_URL (a superuser URL; default an embedded PostgreSQL), BENCH_TENANTS (1000),
 * BENCH_ROWS (1000), BENCH_POOL (10), BENCH_INFLIGHT (16), BENCH_SECONDS per workload and round (2),
 * BENCH_ROUNDS (2; workloads alternate round by round, the best round of each is reported), BENCH_HOT_LANES (10),
 * BENCH_MUX (multiplexed connections of the scoped pool; default BENCH_POOL), BENCH_PLACEMENT (sync: a sync
 * placement resolver answering shared on every scoped pool), PGBOUNCER_URL (a
 * superuser URL of PgBouncer in transaction mode in front of DATABASE_URL's server; without it the
 * PgBouncer rows are skipped, and the run says so).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Tenant } from '@tenantscope/core';
import { installTenantScope, scopedPool, tenantTableSql } from '@tenantscope/postgres';
import { createTestIssuer, resolvePostgres } from '@tenantscope/testkit';
import pg from 'pg';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const num = (name: string, d: number) => {
  const v = process.env[name];
  return v ? Number(v) : d;
};
const TENANTS = num('BENCH_TENANTS', 1000);
const ROWS = num('BENCH_ROWS', 1000);
const POOL = num('BENCH_POOL', 10);
const INFLIGHT = num('BENCH_INFLIGHT', 16);
const SECONDS = num('BENCH_SECONDS', 2);
const ROUNDS = num('BENCH_ROUNDS', 2);
const HOT_LANES = num('BENCH_HOT_LANES', 10);
const MUX = num('BENCH_MUX', POOL);
/**
 * BENCH_PLACEMENT=sync: the scoped pools get a sync placement resolver that answers shared (the
 * per-operation resolution path); unset: no resolver (the default path).
 */
const SHARED_PLACEMENT = { tier: 'shared' } as const;
const PLACEMENT = process.env.BENCH_PLACEMENT === 'sync' ? { placement: () => SHARED_PLACEMENT } : {};

const tenantId = (i: number) => `t${String(i).padStart(4, '0')}`;

interface Result {
  name: string;
  qps: number;
  p50: number;
  p99: number;
  queries: number;
  errors: number;
  /** This (client) process's CPU time per query, in microseconds. */
  cpuUs: number;
  /** The database server's CPU time per query, in microseconds (local servers only). */
  serverCpuUs: number | undefined;
}

/** CPU time (µs) of the PostgreSQL server's processes, when it runs on this machine; else undefined. */
let serverPid: number | undefined;
function serverCpuMicros(): number | undefined {
  if (!serverPid) return undefined;
  let ticks = 0;
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(d)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      } catch {
        continue;
      }
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      // A backend that exits moves its time into the postmaster's reaped-children fields.
      if (Number(d) === serverPid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      else if (ppid === serverPid) ticks += Number(f[11]) + Number(f[12]);
    }
  } catch {
    return undefined;
  }
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

async function drive(name: string, one: (i: number) => Promise<unknown>, seconds = SECONDS): Promise<Result> {
  const lat: number[] = [];
  let errors = 0;
  let i = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const srv0 = serverCpuMicros();
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await one(i++);
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = serverCpuMicros();
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? 0;
  return {
    name,
    qps: lat.length / elapsed,
    p50: pct(0.5),
    p99: pct(0.99),
    queries: lat.length,
    errors,
    cpuUs: (cpu.user + cpu.system) / Math.max(1, lat.length),
    serverCpuUs: srv0 !== undefined && srv1 !== undefined ? (srv1 - srv0) / Math.max(1, lat.length) : undefined,
  };
}

/** A TCP proxy counting client->server turns (a burst of client writes after a server reply). */
async function turnCounter(
  target: URL,
): Promise<{ port: number; turns(): number; reset(): void; close(): Promise<void> }> {
  let turns = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    let lastFromClient = false;
    const upstream = createConnection(Number(target.port || 5432), target.hostname);
    sockets.add(upstream);
    client.on('data', (d) => {
      if (!lastFromClient) turns++;
      lastFromClient = true;
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      lastFromClient = false;
      client.write(d);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    turns: () => turns,
    reset: () => {
      turns = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function main() {
  const started = performance.now();
  const pgs = await resolvePostgres();
  console.log(`# PostgreSQL: ${pgs.describe}`);
  const db = await createScratchDatabase(pgs.url, 'bench');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  try {
    const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
    const su = new pg.Client({ connectionString: db.superUrl });
    await su.connect();
    su.on('error', () => undefined);
    const v = await su.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version']);
    console.log(
      `# server_version ${v.rows[0]?.v}; ${TENANTS} tenants x ${ROWS} rows; pool ${POOL}; ${INFLIGHT} in flight; ${SECONDS}s per workload x ${ROUNDS} rounds`,
    );
    const tSetup = performance.now();
    await su.query(`
      CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, payload text NOT NULL, PRIMARY KEY (tenant_id, id));
      CREATE TABLE items_raw (tenant_id text NOT NULL, id int NOT NULL, payload text NOT NULL, PRIMARY KEY (tenant_id, id));
      ALTER TABLE items OWNER TO ${db.ownerRole};
      ALTER TABLE items_raw OWNER TO ${db.ownerRole};`);
    await su.query(
      `INSERT INTO items SELECT 't' || lpad(t::text, 4, '0'), i, md5(t::text || ':' || i::text) FROM generate_series(0, $1 - 1) t, generate_series(1, $2) i`,
      [TENANTS, ROWS],
    );
    await su.query('INSERT INTO items_raw SELECT * FROM items');
    await su.query('VACUUM ANALYZE items');
    await su.query('VACUUM ANALYZE items_raw');
    try {
      const dir = (await su.query<{ d: string }>("SELECT current_setting('data_directory', true) AS d")).rows[0]?.d;
      if (dir) serverPid = Number(readFileSync(`${dir}/postmaster.pid`, 'utf8').split('\n')[0]);
    } catch {
      serverPid = undefined; // not readable here (remote server, or no privilege): no server CPU column
    }
    await su.end();
    await owner.query(tenantTableSql({ table: 'items', grantTo: db.appRole, privileges: ['SELECT'] }));
    await owner.query(`GRANT SELECT ON items_raw TO ${db.appRole}`);
    console.log(`# setup ${((performance.now() - tSetup) / 1000).toFixed(1)}s`);

    const issuer = await createTestIssuer();
    const tenants: Tenant[] = [];
    for (let i = 0; i < TENANTS; i++) tenants.push(await issuer.tenant(tenantId(i)));
    const rnd = (n: number) => Math.floor(Math.random() * n);
    const rowId = () => 1 + rnd(ROWS);

    const bouncerUrl = (url: string) => {
      const u = new URL(url);
      const b = new URL(process.env.PGBOUNCER_URL as string);
      u.hostname = b.hostname;
      u.port = b.port;
      return u.toString();
    };
    const appUrls: [string, string, 'none' | 'transaction'][] = [['direct', db.appUrl, 'none']];
    if (process.env.PGBOUNCER_URL) appUrls.push(['PgBouncer', bouncerUrl(db.appUrl), 'transaction']);
    else console.log('# PgBouncer rows skipped: PGBOUNCER_URL is not set (.ci/services.d/30-pgbouncer.sh starts one)');

    const closers: (() => Promise<unknown>)[] = [];
    const hotSet = tenants.slice(0, 10);
    const scopedQ = 'SELECT id, payload FROM items WHERE id = $1';
    const rawQ = 'SELECT id, payload FROM items_raw WHERE tenant_id = $1 AND id = $2';
    interface Workload {
      name: string;
      base: string;
      fn: (i: number) => Promise<unknown>;
      /** Client connections this workload's pool holds open (sampled after each round). */
      conns: () => number;
    }
    const workloads: Workload[] = [];
    let scopedDefault: ReturnType<typeof scopedPool> | undefined;
    for (const [via, url, pooler] of appUrls) {
      const raw = new pg.Pool({ connectionString: url, max: POOL });
      // Equal budget: POOL hot lanes; the checkout pool only serves the tenants' first queries
      // (before promotion) and closes those connections before timing.
      const hot = scopedPool(
        { connectionString: url, max: POOL, idleTimeoutMillis: 300 },
        { bindingKey, pooler, hot: { maxTenants: POOL, promoteAfter: 20 }, ...PLACEMENT },
      );
      // Equal budget: POOL multiplexed connections, no hot lanes.
      const mux = scopedPool(
        { connectionString: url, max: POOL },
        { bindingKey, pooler, multiplex: POOL, ...PLACEMENT },
      );
      closers.push(
        () => raw.end(),
        () => hot.end(),
        () => mux.end(),
      );
      const rawName = `${via}: raw, pool ${POOL} (explicit tenant predicate, no RLS)`;
      workloads.push(
        {
          name: rawName,
          base: rawName,
          fn: () => raw.query(rawQ, [tenantId(rnd(TENANTS)), rowId()]),
          conns: () => raw.totalCount,
        },
        {
          name: `${via}: scoped, 10 hot tenants, ${POOL} hot lanes`,
          base: rawName,
          fn: () => hot.forTenant(hotSet[rnd(10)] as Tenant).query(scopedQ, [rowId()]),
          conns: () => hot.stats().hotConnections + hot.unscopedPool.totalCount,
        },
        {
          name: `${via}: scoped, 1,000 random tenants, ${POOL} multiplexed`,
          base: rawName,
          fn: () => mux.forTenant(tenants[rnd(TENANTS)] as Tenant).query(scopedQ, [rowId()]),
          conns: () => POOL + mux.unscopedPool.totalCount,
        },
      );
      if (via === 'direct') {
        // The default set-up: multiplexed bound statements for the long tail, hot lanes for hot tenants.
        const scoped = scopedPool(
          { connectionString: url, max: POOL },
          { bindingKey, multiplex: MUX, hot: { maxTenants: HOT_LANES }, ...PLACEMENT },
        );
        scopedDefault = scoped;
        closers.push(() => scoped.end());
        workloads.push(
          {
            name: `direct: scoped, 10 hot tenants, default budget (${MUX} mux + ${HOT_LANES} lanes)`,
            base: rawName,
            fn: () => scoped.forTenant(hotSet[rnd(10)] as Tenant).query(scopedQ, [rowId()]),
            conns: () => MUX + scoped.stats().hotConnections + scoped.unscopedPool.totalCount,
          },
          {
            name: `direct: scoped, 1,000 random tenants, default budget (${MUX} mux + ${HOT_LANES} lanes)`,
            base: rawName,
            fn: () => scoped.forTenant(tenants[rnd(TENANTS)] as Tenant).query(scopedQ, [rowId()]),
            conns: () => MUX + scoped.stats().hotConnections + scoped.unscopedPool.totalCount,
          },
        );
      }
      // correctness spot check before timing
      const chk = await mux
        .forTenant(tenants[1] as Tenant)
        .query<{ n: number }>('SELECT count(*)::int AS n FROM items');
      if (chk.rows[0]?.n !== ROWS) throw new Error(`${via}: scoped count mismatch`);
    }

    const seen = new Map<string, number>();

    // full warm-up of every path (and let the hot tenants be promoted), then let idle checkouts close
    for (const w of workloads) await drive(w.name, w.fn, 1.5);
    await new Promise((r) => setTimeout(r, 800));
    const best = new Map<string, Result>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const w of workloads) {
        const r = await drive(w.name, w.fn);
        seen.set(w.name, Math.max(seen.get(w.name) ?? 0, w.conns()));
        const prev = best.get(w.name);
        if (!prev || r.qps > prev.qps) best.set(w.name, r);
      }
    }
    console.log('');
    console.log(
      '| workload | queries/s | p50 ms | p99 ms | ratio to raw (same transport) | connections | client CPU µs/query | server CPU µs/query | errors |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const w of workloads) {
      const r = best.get(w.name) as Result;
      const b = best.get(w.base) as Result;
      console.log(
        `| ${w.name} | ${r.qps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.qps / b.qps).toFixed(2)} | ${seen.get(w.name)} | ${r.cpuUs.toFixed(0)} | ${r.serverCpuUs?.toFixed(0) ?? 'n/a'} | ${r.errors} |`,
      );
    }
    const st = scopedDefault?.stats();
    if (st)
      console.log(
        `\n# default budget: ${st.hotTenants} tenants hot (max ${HOT_LANES}), ${st.hotQueries} hot queries, ${st.multiplexedQueries} multiplexed, ${st.sharedQueries} checkout-path queries`,
      );
    console.log(
      '# connections: client connections the workload held (multiplexed ones counted at their maximum); behind PgBouncer both sides share its server pool (default_pool_size)',
    );
    await Promise.all(closers.map((c) => c()));

    // Round trips per query, through a counting proxy, one query at a time.
    const proxy = await turnCounter(new URL(db.appUrl));
    const viaProxy = new URL(db.appUrl);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const pRaw = new pg.Pool({ connectionString: viaProxy.toString(), max: 1 });
    const pShared = scopedPool({ connectionString: viaProxy.toString(), max: 1 }, { bindingKey });
    const pMux = scopedPool({ connectionString: viaProxy.toString(), max: 1 }, { bindingKey, multiplex: 1 });
    const pHot = scopedPool(
      { connectionString: viaProxy.toString(), max: 1 },
      { bindingKey, hot: { maxTenants: 1, promoteAfter: 1 } },
    );
    const N = 200;
    const measure = async (name: string, fn: () => Promise<unknown>) => {
      await fn(); // connect (and promote) outside the count
      await new Promise((r) => setTimeout(r, 200));
      await fn();
      proxy.reset();
      for (let k = 0; k < N; k++) await fn();
      console.log(`# round trips per query, ${name}: ${(proxy.turns() / N).toFixed(2)}`);
    };
    const t0 = tenants[0] as Tenant;
    await measure('raw', () => pRaw.query(rawQ, [tenantId(0), rowId()]));
    await measure('scoped checkout path (bind + statement, one Sync)', () =>
      pShared.forTenant(t0).query(scopedQ, [rowId()]),
    );
    await measure('scoped multiplexed (bind + statement, one Sync)', () =>
      pMux.forTenant(t0).query(scopedQ, [rowId()]),
    );
    await measure('scoped transaction() with one statement (BEGIN+bind, statement, COMMIT)', () =>
      pShared.forTenant(t0).transaction((tx) => tx.query(scopedQ, [rowId()])),
    );
    await measure('scoped hot lane', () => pHot.forTenant(t0).query(scopedQ, [rowId()]));
    await Promise.all([pRaw.end(), pShared.end(), pMux.end(), pHot.end()]);
    await proxy.close();
  } finally {
    await owner.end();
    await db.drop().catch(() => undefined);
    await pgs.stop();
  }
  console.log(`# total ${((performance.now() - started) / 1000).toFixed(1)}s`);
}

await main().catch((err) => {
  console.error(err);
  process.exit(1);
});
