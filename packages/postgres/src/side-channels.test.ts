/**
 * Side channels: through queryUntrusted (run_sql) or a scoped query, acme learns nothing about
 * globex: not its row count (statistics views, pg_class, sizes), not its writes (transaction-id,
 * WAL and sequence counters, system columns), not its values (pg_stats, EXPLAIN estimates), not
 * its running statements (pg_stat_activity). Statistics are populated first (ANALYZE by the
 * owner). The same probes against a database without the guards show every channel is real.
 */
import { isTenantScopeError } from '@tenantscope/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSideChannelGuards, scopedPool, type TenantDb, tenantTableSql } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

const GLOBEX_ROWS = 400;
let guarded: PgFixture;
let open: PgFixture;
const pools: ReturnType<typeof scopedPool>[] = [];

/** globex gets many rows (a 'Hank Scorpio' among the most common values), acme 3; then ANALYZE. */
async function populate(fx: PgFixture): Promise<void> {
  const su = new pg.Client({ connectionString: fx.db.superUrl });
  await su.connect();
  try {
    await su.query(
      `INSERT INTO customers (tenant_id, name, email)
       SELECT 'globex', CASE WHEN i % 4 = 0 THEN 'Hank Scorpio' ELSE 'globex-' || i END, 'g' || i || '@globex.test'
       FROM generate_series(1, $1) i`,
      [GLOBEX_ROWS],
    );
    await su.query("INSERT INTO notes (tenant_id, body) SELECT 'globex', 'n' || i FROM generate_series(1, 50) i");
    const ext = await su.query("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'");
    if (ext.rowCount) await su.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    else console.log('[side-channels] pg_stat_statements is not available on this server: its probe checks nothing');
  } finally {
    await su.end();
  }
  await fx.owner.query('ANALYZE customers; ANALYZE notes');
}

const acmes = new Map<PgFixture, TenantDb>();
async function acmeOf(fx: PgFixture): Promise<TenantDb> {
  let db = acmes.get(fx);
  if (!db) {
    const s = scopedPool({ connectionString: fx.db.appUrl, max: 4 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    pools.push(s);
    db = s.forTenant(await fx.tenant('acme'));
    acmes.set(fx, db);
  }
  return db;
}

beforeAll(async () => {
  [guarded, open] = await Promise.all([
    pgFixture('sidech', ['acme'], 3),
    pgFixture('sidechopen', ['acme'], 3, { sideChannelGuards: false }),
  ]);
  await Promise.all([populate(guarded), populate(open)]);
  // The open database is granted the old way (SELECT on the whole table), as before column grants.
  await open.owner.query(`GRANT SELECT ON customers, notes TO ${open.db.appRole}`);
  // The extension came after the fixture's guards: install them again (idempotent).
  const su = new pg.Client({ connectionString: guarded.db.superUrl });
  await su.connect();
  await installSideChannelGuards(su);
  await su.end();
}, 120_000);
afterAll(async () => {
  for (const p of pools) await p.end();
  await guarded?.close();
  await open?.close();
});

/** Statements that, without the guards, return a figure that counts other tenants' rows or writes. */
const COUNT_PROBES: [string, string][] = [
  [
    'pg_stat_user_tables',
    "SELECT n_live_tup::int AS v, n_tup_ins::int AS w FROM pg_stat_user_tables WHERE relname = 'customers'",
  ],
  ['pg_stat_all_tables', "SELECT n_live_tup::int AS v FROM pg_stat_all_tables WHERE relname = 'customers'"],
  [
    'pg_statio_user_tables',
    "SELECT heap_blks_read + heap_blks_hit AS v FROM pg_statio_user_tables WHERE relname = 'customers'",
  ],
  ['pg_stat_get_live_tuples()', "SELECT pg_stat_get_live_tuples('customers'::regclass)::int AS v"],
  ['pg_stat_get_tuples_inserted()', "SELECT pg_stat_get_tuples_inserted('customers'::regclass)::int AS v"],
  ['pg_class.reltuples', "SELECT reltuples::int AS v, relpages AS w FROM pg_class WHERE relname = 'customers'"],
  ['pg_relation_size()', "SELECT pg_relation_size('customers')::int AS v"],
  ['pg_total_relation_size()', "SELECT pg_total_relation_size('customers')::int AS v"],
  ['pg_stat_database', 'SELECT tup_inserted::int AS v FROM pg_stat_database WHERE datname = current_database()'],
  ['transaction-id counter', 'SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int AS v'],
  ['txid_current()', 'SELECT txid_current()::int AS v'],
  ['age(xid) of own rows', 'SELECT age(xmin) AS v FROM customers LIMIT 1'],
  ['xmin of own rows', 'SELECT xmin::text::int AS v FROM customers LIMIT 1'],
  ['ctid of own rows', 'SELECT (ctid::text::point)[0]::int AS v FROM customers LIMIT 1'],
  ['WAL position', 'SELECT pg_current_wal_lsn()::text AS v'],
  ['pg_locks', 'SELECT count(*)::int AS v FROM pg_locks'],
  ['pg_stat_statements', 'SELECT count(*)::int AS v FROM pg_stat_statements'],
];

type Outcome = { rows: Record<string, unknown>[] } | { code: string; sqlstate?: string };
async function outcome(p: Promise<{ rows: Record<string, unknown>[] }>): Promise<Outcome> {
  try {
    return { rows: (await p).rows };
  } catch (err) {
    if (!isTenantScopeError(err)) throw err;
    return { code: err.code, sqlstate: (err.details as { sqlstate?: string } | undefined)?.sqlstate };
  }
}

describe.each([
  ['queryUntrusted (run_sql)', true],
  ['a scoped query()', false],
] as const)('statistics and counters through %s', (_name, untrusted) => {
  const run = (db: TenantDb, sql: string) => outcome(untrusted ? db.queryUntrusted(sql) : db.query(sql));

  it.each(COUNT_PROBES)('%s: refused with the guards (permission denied)', async (_label, sql) => {
    const r = await run(await acmeOf(guarded), sql);
    expect(r).toMatchObject({ code: 'PG_QUERY_FAILED', sqlstate: '42501' });
  });

  it('the same probes answer without the guards, so each one is a real channel', async () => {
    const acme = await acmeOf(open);
    let answered = 0;
    for (const [label, sql] of COUNT_PROBES) {
      const r = await run(acme, sql);
      if ('rows' in r && r.rows.length > 0) answered++;
      else if (label !== 'pg_stat_statements') throw new Error(`${label} did not answer without the guards`);
    }
    expect(answered).toBeGreaterThanOrEqual(COUNT_PROBES.length - 1);
    const n = await run(acme, COUNT_PROBES[3]?.[1] as string);
    expect((n as { rows: { v: number }[] }).rows[0]?.v).toBeGreaterThan(GLOBEX_ROWS); // every tenant's rows
  });

  it("pg_stats and pg_stats_ext show no value of globex's (RLS tables are hidden)", async () => {
    for (const fx of [guarded, open]) {
      const r = await run(
        await acmeOf(fx),
        "SELECT most_common_vals::text AS v, histogram_bounds::text AS h FROM pg_stats WHERE tablename = 'customers'",
      );
      if ('rows' in r) expect(JSON.stringify(r.rows)).not.toMatch(/Hank|globex/);
      else expect(r.code).toBe('PG_QUERY_FAILED');
    }
  });

  it("pg_stat_activity: acme cannot read globex's running statement", async () => {
    for (const [fx, leaks] of [
      [guarded, false],
      [open, true],
    ] as const) {
      const s = scopedPool(
        { connectionString: fx.db.appUrl, max: 2 },
        { bindingKey: fx.bindingKey, pooler: fx.pooler },
      );
      pools.push(s);
      const globex = s.forTenant(await fx.tenant('globex'));
      let done = false;
      const running = globex
        .queryUntrusted("SELECT pg_sleep(3), 'globex-secret-marker' AS m", [], { timeoutMs: 6000 })
        .finally(() => {
          done = true;
        });
      let r: Outcome;
      let seen = false;
      do {
        await new Promise((res) => setTimeout(res, 200));
        r = await run(await acmeOf(fx), "SELECT string_agg(query, ' | ') AS v FROM pg_stat_activity");
        seen = 'rows' in r && JSON.stringify(r.rows).includes('globex-secret-marker');
      } while (!seen && !done && 'rows' in r);
      await running;
      expect(seen).toBe(leaks);
      if (!leaks) expect(r).toMatchObject({ code: 'PG_QUERY_FAILED', sqlstate: '42501' });
    }
  });
});

describe('doctor', () => {
  it('refuses the database without the guards (STATS, CATALOG_COUNTS, ACTIVITY) and passes it with them', async () => {
    const problems = async (fx: PgFixture) => {
      const s = scopedPool(
        { connectionString: fx.db.appUrl, max: 1 },
        { bindingKey: fx.bindingKey, pooler: fx.pooler },
      );
      try {
        await s.doctor();
        return [];
      } catch (err) {
        return ((err as { details?: { problems?: { code: string }[] } }).details?.problems ?? []).map((p) => p.code);
      } finally {
        await s.end();
      }
    };
    expect(await problems(open)).toEqual(
      expect.arrayContaining(['STATS_READABLE', 'CATALOG_COUNTS_READABLE', 'ACTIVITY_READABLE']),
    );
    expect(await problems(guarded)).toEqual(['SEQUENCE_USABLE'].filter(() => false));
  });
});

describe('planner estimates (EXPLAIN)', () => {
  const oracle = "EXPLAIN SELECT * FROM customers WHERE name = 'Hank Scorpio'";

  it('queryUntrusted refuses EXPLAIN in every spelling, and DO, before sending anything', async () => {
    const acme = await acmeOf(guarded);
    for (const sql of [
      oracle,
      'explain (format json) SELECT * FROM customers',
      '  /* a /* nested */ comment */ -- and a line\n EXPLAIN SELECT 1',
      'DO $$ BEGIN PERFORM 1; END $$',
      'SHOW app.tenant_id',
      'COPY customers TO STDOUT',
    ]) {
      expect(await outcome(acme.queryUntrusted(sql)), sql).toEqual({ code: 'PG_STATEMENT_REFUSED' });
    }
  });

  it('EXPLAIN inside query_to_xml() is refused by PostgreSQL (non-volatile function)', async () => {
    const acme = await acmeOf(guarded);
    const r = await outcome(
      acme.queryUntrusted(`SELECT query_to_xml('${oracle.replace(/'/g, "''")}', true, false, '')`),
    );
    expect(r).toMatchObject({ code: 'PG_QUERY_FAILED' });
  });

  it("without the refusal the estimate is an oracle: 'Hank Scorpio' (globex's) is estimated above an absent name", async () => {
    // Through the trusted path (tool code may EXPLAIN its own statements); an agent cannot reach this.
    const acme = await acmeOf(guarded);
    const est = async (name: string) => {
      const r = await acme.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT * FROM customers WHERE name = '${name}'`);
      return Number(/rows=(\d+)/.exec(r.rows.map((x) => x['QUERY PLAN']).join('\n'))?.[1]);
    };
    const full = await acme.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT * FROM customers');
    console.log(
      `[side-channels] trusted EXPLAIN estimates: Hank Scorpio=${await est('Hank Scorpio')}, absent=${await est('Nobody At All')}; ` +
        `all rows: ${/rows=(\d+)/.exec(full.rows.map((x) => x['QUERY PLAN']).join('\n'))?.[1]} (acme has 3)`,
    );
    expect(await est('Hank Scorpio')).toBeGreaterThanOrEqual(await est('Nobody At All'));
  });
});

describe('advisory locks', () => {
  it("queryUntrusted refuses advisory-lock calls in every spelling (another tenant's lock tells it is writing)", async () => {
    const acme = await acmeOf(guarded);
    for (const sql of [
      "SELECT pg_try_advisory_xact_lock(hashtextextended('dek|globex', 0))",
      'SELECT pg_catalog."pg_try_advisory_lock"(1)',
      'SELECT PG_ADVISORY_XACT_LOCK_SHARED(1)',
      'SELECT U&"pg_try_\\0061dvisory_xact_lock"(1)',
    ]) {
      expect(await outcome(acme.queryUntrusted(sql)), sql).toEqual({ code: 'PG_STATEMENT_REFUSED' });
    }
    // and the functions that run SQL from a string (which would hide the name) are revoked
    for (const sql of [
      "SELECT query_to_xml('SELECT pg_try_' || 'advisory_xact_lock(1)', true, false, '')",
      "SELECT * FROM ts_stat('SELECT pg_try_' || 'advisory_xact_lock(1)')",
    ]) {
      expect(await outcome(acme.queryUntrusted(sql)), sql).toMatchObject({
        code: 'PG_QUERY_FAILED',
        sqlstate: '42501',
      });
    }
  });

  it('without the refusal the channel is real: acme sees the lock globex holds', async () => {
    const s = scopedPool(
      { connectionString: open.db.appUrl, max: 2 },
      { bindingKey: open.bindingKey, pooler: open.pooler },
    );
    pools.push(s);
    const globex = s.forTenant(await open.tenant('globex'));
    const acme = await acmeOf(open);
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let locked = () => {};
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const tx = globex.transaction(async (t) => {
      await t.query("SELECT pg_advisory_xact_lock(hashtextextended('dek|globex', 0))");
      locked();
      await held;
    });
    await isLocked;
    const r = await acme.query<{ free: boolean }>(
      "SELECT pg_try_advisory_xact_lock(hashtextextended('dek|globex', 0)) AS free",
    );
    release();
    await tx;
    expect(r.rows[0]?.free).toBe(false);
  });
});

describe('ids carry no cross-tenant signal', () => {
  it('tenantTableSql refuses a table fed by a shared sequence (bigserial, identity)', async () => {
    for (const ddl of [
      'CREATE TABLE seq_a (id bigserial PRIMARY KEY, tenant_id text NOT NULL)',
      'CREATE TABLE seq_b (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id text NOT NULL)',
    ]) {
      await guarded.owner.query(ddl);
      const table = /TABLE (\w+)/.exec(ddl)?.[1] as string;
      const err = await guarded.owner.query(tenantTableSql({ table, grantTo: guarded.db.appRole })).catch((e) => e);
      expect(err.code, ddl).toBe('55000');
      // the refusal comes first: the table is not half converted
      const rls = await guarded.owner.query(`SELECT relrowsecurity FROM pg_class WHERE relname = $1`, [table]);
      expect(rls.rows[0].relrowsecurity).toBe(false);
    }
  });

  it('consecutive ids acme receives do not move when globex inserts (uuidv7), unlike a shared bigserial', async () => {
    const s = scopedPool(
      { connectionString: guarded.db.appUrl, max: 2 },
      { bindingKey: guarded.bindingKey, pooler: guarded.pooler },
    );
    pools.push(s);
    const acme = s.forTenant(await guarded.tenant('acme'));
    const globex = s.forTenant(await guarded.tenant('globex'));
    const ins = async (db: TenantDb) =>
      (await db.query<{ id: string }>("INSERT INTO notes (body) VALUES ('x') RETURNING id")).rows[0]?.id as string;
    const a1 = await ins(acme);
    for (let i = 0; i < 20; i++) await ins(globex);
    const a2 = await ins(acme);
    expect(a1).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a2 > a1).toBe(true); // time-ordered for the index
    // 74 of the 128 bits are random: no counter to read. The only shared part is the clock.
    const rand = (u: string) => u.replace(/-/g, '').slice(13);
    expect(rand(a1)).not.toBe(rand(a2));
    // and the shared bigserial this replaces did move: the control
    await open.owner.query('CREATE TABLE ctl (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text)');
    await open.owner.query(tenantTableSql({ table: 'ctl', grantTo: open.db.appRole, allowSharedSequence: true }));
    await open.owner.query(`GRANT USAGE ON SEQUENCE ctl_id_seq TO ${open.db.appRole}`);
    const o = scopedPool(
      { connectionString: open.db.appUrl, max: 2 },
      { bindingKey: open.bindingKey, pooler: open.pooler },
    );
    pools.push(o);
    const oa = o.forTenant(await open.tenant('acme'));
    const og = o.forTenant(await open.tenant('globex'));
    const insC = async (db: TenantDb) =>
      Number((await db.query<{ id: string }>("INSERT INTO ctl (body) VALUES ('x') RETURNING id")).rows[0]?.id);
    const c1 = await insC(oa);
    for (let i = 0; i < 20; i++) await insC(og);
    expect((await insC(oa)) - c1).toBe(21);
    const seq = await outcome(oa.queryUntrusted("SELECT pg_sequence_last_value('ctl_id_seq')::int AS v"));
    expect(seq).toMatchObject({ rows: [{ v: 22 }] }); // 1 + 20 + 1: every tenant's inserts
  });

  it('the app role cannot read a sequence position through pg_sequence_last_value with the guards', async () => {
    const acme = await acmeOf(guarded);
    await guarded.owner.query('CREATE SEQUENCE IF NOT EXISTS lone_seq');
    const r = await outcome(acme.queryUntrusted("SELECT pg_sequence_last_value('lone_seq') AS v"));
    expect(r).toMatchObject({ code: 'PG_QUERY_FAILED', sqlstate: '42501' });
  });
});
