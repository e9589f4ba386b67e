/**
 * Forgery corpus: SQL an agent controls tries to point the binding at another tenant. Each case
 * runs as acme and must see 0 globex rows; the same corpus runs through `query` (pipelined,
 * simple protocol for multi-statement text) and `queryUntrusted`.
 */
import type { Tenant } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fenceTenant, isFenced, type ScopedPool, scopedPool, type TenantDb, unfenceTenant } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';
import { corpus, foreignRows, Q } from './testing/forgery-corpus.ts';

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

describe('move fences are out of reach of agent SQL', () => {
  it('the app role cannot read, add, lift or pass a fence, through any handle', async () => {
    await fenceTenant(fx.owner, 'globex');
    try {
      const attempts = [
        'SELECT tenant_id FROM tenantscope.fence',
        "INSERT INTO tenantscope.fence (tenant_id) VALUES ('initech')",
        "DELETE FROM tenantscope.fence WHERE tenant_id = 'globex'",
        "UPDATE tenantscope.fence SET tenant_id = 'x' WHERE tenant_id = 'globex'",
        'TRUNCATE tenantscope.fence',
        // the mover's bind, which passes a fence: EXECUTE for the owner only
        `SELECT tenantscope.bind_exclusive('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32))`,
      ];
      for (const text of attempts) {
        expect(await codeOf(acme.query(text)), text).toBe('PG_QUERY_FAILED');
        expect(await codeOf(acmeFast.query(text)), text).toBe('PG_QUERY_FAILED');
        expect(['PG_QUERY_FAILED', 'PG_STATEMENT_REFUSED'], text).toContain(
          await codeOf(acme.queryUntrusted(text, [], { readOnly: false })),
        );
      }
      const raw = new pg.Client({ connectionString: fx.db.appUrl });
      await raw.connect();
      try {
        for (const text of attempts) expect(await codeOf(raw.query(text)), text).toBe('42501');
      } finally {
        await raw.end();
      }
      expect(await isFenced(fx.owner, 'globex')).toBe(true);
      expect(await isFenced(fx.owner, 'initech')).toBe(false);
    } finally {
      await unfenceTenant(fx.owner, 'globex');
    }
  });
});
