/**
 * Forgery corpus: SQL an agent controls tries to point the binding at another tenant. Each case
 * runs as acme and must see 0 globex rows; the same corpus runs through `query` (pipelined,
 * simple protocol for multi-statement text) and `queryUntrusted`.
 */
import type { Tenant } from '@tenantscope/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScopedPool, scopedPool, type TenantDb } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

let fx: PgFixture;
let scoped: ScopedPool;
let acmeTenant: Tenant;
let acme: TenantDb;
let globex: TenantDb;
let fast: ScopedPool;
let acmeFast: TenantDb;

beforeAll(async () => {
  fx = await pgFixture('forgery', ['acme', 'globex']);
  scoped = scopedPool({ connectionString: fx.db.appUrl, max: 3 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
  acmeTenant = await fx.tenant('acme');
  acme = scoped.forTenant(acmeTenant);
  globex = scoped.forTenant(await fx.tenant('globex'));
  fast = scopedPool(
    { connectionString: fx.db.appUrl, max: 2 },
    { bindingKey: fx.bindingKey, pooler: fx.pooler, multiplex: 2, hot: { maxTenants: 1, promoteAfter: 1 } },
  );
  acmeFast = fast.forTenant(acmeTenant);
  await acmeFast.query('SELECT 1');
  await new Promise((r) => setTimeout(r, 300)); // acme now has a hot lane
});
afterAll(async () => {
  await fast?.end();
  await scoped?.end();
  await fx?.close();
});

const Q =
  "SELECT count(*) FILTER (WHERE tenant_id = 'globex')::int AS foreign_rows, count(*)::int AS all_rows FROM customers";

/** Runs text and returns the number of globex rows any result set showed (0 if it errored). */
async function foreignRows(
  db: TenantDb,
  text: string,
  untrusted = false,
): Promise<{ foreign: number; error: string | null }> {
  try {
    const r = untrusted ? await db.queryUntrusted(text, undefined, { timeoutMs: 1000 }) : await db.query(text);
    // multi-statement text gives an array of results
    const results = (Array.isArray(r) ? r : [r]) as pg.QueryResult[];
    let foreign = 0;
    for (const res of results) {
      for (const row of res.rows ?? []) {
        if (typeof row.foreign_rows === 'number') foreign += row.foreign_rows;
        for (const v of Object.values(row)) if (typeof v === 'string' && v.startsWith('globex-')) foreign++;
      }
    }
    return { foreign, error: null };
  } catch (err) {
    return { foreign: 0, error: (err as { code?: string }).code ?? 'unknown' };
  }
}

const corpus: [string, string][] = [
  ['set_config local to a plain id', `SELECT set_config('app.tenant_id', 'globex', true); ${Q}`],
  [
    'set_config in the same statement',
    `SELECT set_config('app.tenant_id', 'globex', true) AS s, * FROM customers WHERE tenant_id = 'globex'`,
  ],
  ['set_config session-level', `SELECT set_config('app.tenant_id', 'globex', false); ${Q}`],
  ['forged token shape', `SELECT set_config('app.tenant_id', 'x:globex:' || repeat('ab', 32), true); ${Q}`],
  [
    'own token with the tenant swapped',
    `SELECT set_config('app.tenant_id', replace(current_setting('app.tenant_id'), ':acme:', ':globex:'), true); ${Q}`,
  ],
  ['session token shape', `SELECT set_config('app.tenant_id', 's:globex:' || repeat('0', 64), true); ${Q}`],
  ['SET', `SET app.tenant_id = 'globex'; ${Q}`],
  ['SET LOCAL', `SET LOCAL app.tenant_id = 'globex'; ${Q}`],
  ['RESET ALL', `RESET ALL; ${Q}`],
  ['RESET the setting', `RESET app.tenant_id; ${Q}`],
  ['DISCARD ALL after ending the transaction', `COMMIT; DISCARD ALL; SET app.tenant_id = 'globex'; ${Q}`],
  ['SET ROLE to the owner', `SET ROLE ${'OWNER_ROLE'}; ${Q}`],
  ['SET ROLE postgres', `SET ROLE postgres; ${Q}`],
  ['SET SESSION AUTHORIZATION', `SET SESSION AUTHORIZATION postgres; ${Q}`],
  ['RESET ROLE', `RESET ROLE; ${Q}`],
  [
    'commit then a new transaction with a forged setting',
    `COMMIT; BEGIN; SELECT set_config('app.tenant_id', 'globex', true); ${Q}; COMMIT`,
  ],
  ['rollback then query outside any binding', `ROLLBACK; ${Q}`],
  ['DO block setting the value', `DO $$ BEGIN PERFORM set_config('app.tenant_id', 'globex', true); END $$; ${Q}`],
  [
    'bind() with a forged token',
    `SELECT tenantscope.bind('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32)); ${Q}`,
  ],
  [
    'bind_session() with a forged token',
    `SELECT tenantscope.bind_session('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32)); ${Q}`,
  ],
  ['read the key table', "SELECT encode(inner_key, 'hex') FROM tenantscope.binding_key"],
  [
    'create a function that sets it',
    `CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('app.tenant_id','globex',true) $$; ${Q}`,
  ],
  ['create a temp table to shadow', `CREATE TEMP TABLE customers AS SELECT * FROM public.customers; ${Q}`],
  ['current_tenant_id() with a forged search_path', `SET search_path = pg_temp, public; ${Q}`],
  [
    'security-barrier bypass via leaky function in WHERE',
    `SELECT * FROM customers WHERE tenant_id = 'globex' OR length(name) > 0`,
  ],
  ['a subquery against the raw setting', `SELECT * FROM customers WHERE tenant_id = (SELECT 'globex')`],
];

describe.each([
  ['query', 'plain'],
  ['queryUntrusted', 'untrusted'],
  ['query on the fast path (hot lane + multiplexed)', 'fast'],
] as const)('forgery corpus through %s', (_name, mode) => {
  it.each(corpus)('%s: 0 foreign rows', async (_label, raw) => {
    const text = raw.replace('OWNER_ROLE', fx.db.ownerRole);
    const db = mode === 'fast' ? acmeFast : acme;
    const r = await foreignRows(db, text, mode === 'untrusted');
    expect(r.foreign).toBe(0);
    // and the acme handle still works and still sees only acme afterwards
    const after = await db.query<{ foreign_rows: number; all_rows: number }>(Q);
    expect(after.rows[0]).toEqual({ foreign_rows: 0, all_rows: 3 });
  });
  if (mode === 'fast') {
    it('the fast path really served acme from its hot lane', () => {
      expect(fast.stats().hotQueries).toBeGreaterThan(10);
    });
  }
});

describe('replay and persistence', () => {
  it("a copied binding value is useless in the next transaction, even acme's own", async () => {
    const v = await acme.query<{ v: string }>("SELECT current_setting('app.tenant_id') AS v");
    const value = v.rows[0]?.v ?? '';
    expect(value).toMatch(/^x:acme:[0-9a-f]{64}$/);
    // globex tries acme's value: no acme rows
    const g = await globex.query<{ n: number }>(
      "SELECT set_config('app.tenant_id', $1, true), (SELECT count(*)::int FROM customers WHERE tenant_id = 'acme') AS n",
      [value],
    );
    expect(g.rows[0]?.n).toBe(0);
  });

  it('a session-level copy left on a connection gives the next raw checkout nothing', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 1, pipeline: true } as pg.PoolConfig);
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      // a plain statement (no leading SET), so the connection is pooled, not destroyed
      await s
        .forTenant(acmeTenant)
        .query("SELECT set_config('app.tenant_id', current_setting('app.tenant_id'), false) IS NOT NULL AS ok");
      // whether or not the connection was kept, a raw checkout sees no tenant and no rows
      const raw = await pool.query<{ t: string | null; n: number }>(
        'SELECT tenantscope.current_tenant_id() AS t, (SELECT count(*)::int FROM customers) AS n',
      );
      expect(raw.rows[0]).toEqual({ t: null, n: 0 });
    } finally {
      await pool.end();
    }
  });

  it('a held cursor opened by acme cannot be fetched by the next tenant on that connection', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 1, pipeline: true } as pg.PoolConfig);
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      await s.forTenant(acmeTenant).query('DECLARE stash CURSOR WITH HOLD FOR SELECT * FROM customers');
      const r = await foreignRows(s.forTenant(await fx.tenant('globex')), 'FETCH ALL FROM stash');
      expect(r.error).toBe('PG_QUERY_FAILED'); // cursor does not exist: the connection was destroyed
    } finally {
      await pool.end();
    }
  });

  it('the app role cannot create temp tables in this database (doctor checks it)', async () => {
    const r = await foreignRows(acme, 'CREATE TEMP TABLE t AS SELECT 1');
    expect(r.error).toBe('PG_QUERY_FAILED');
  });

  it('queryUntrusted refuses multi-statement text and writes in read-only mode', async () => {
    expect((await foreignRows(acme, `SELECT 1; ${Q}`, true)).error).toBe('PG_QUERY_FAILED');
    expect((await foreignRows(acme, "INSERT INTO notes (body) VALUES ('x')", true)).error).toBe('PG_QUERY_FAILED');
    expect((await acme.query("SELECT 1 FROM notes WHERE body = 'x'")).rowCount).toBe(0);
  });

  it('queryUntrusted stops a runaway statement', async () => {
    const r = await foreignRows(acme, 'SELECT pg_sleep(5)', true);
    expect(r.error).toBe('PG_QUERY_FAILED');
  }, 10_000);
});
