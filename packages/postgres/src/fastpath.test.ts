/**
 * The fast path: multiplexed bound statements and tenant-affine hot lanes. Proof that no
 * statement ever runs with another tenant's binding, and that a hot lane's binding is useless
 * anywhere else.
 */
import type { Tenant } from '@tenantscope/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScopedPool, scopedPool } from './index.ts';
import { type PgFixture, pgFixture, TEST_POOLER } from './testing/fixture.ts';

/** A hot lane's binding: session-level ('s') on a direct connection, per transaction ('x') behind a transaction pooler. */
const LANE_KIND = TEST_POOLER === 'transaction' ? 'x' : 's';

let fx: PgFixture;
let tenants: Tenant[];
const ids = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, '0')}`);

beforeAll(async () => {
  fx = await pgFixture('fastpath', ids, 2);
  tenants = await Promise.all(ids.map((id) => fx.tenant(id)));
});
afterAll(async () => {
  await fx?.close();
});

const fast = (extra: Partial<Parameters<typeof scopedPool>[1]> = {}): ScopedPool =>
  scopedPool(
    { connectionString: fx.db.appUrl, max: 4 },
    {
      bindingKey: fx.bindingKey,
      pooler: fx.pooler,
      multiplex: 6,
      hot: { maxTenants: 4, promoteAfter: 5, windowMs: 2000 },
      ...extra,
    },
  );

describe('fast path hygiene', () => {
  it('10,000 interleaved statements across 200 tenants (4 of them hot): 0 wrong-tenant rows; hot lanes serve one tenant each', async () => {
    const s = fast();
    const hot = tenants.slice(0, 4);
    const lanePids = new Map<number, Set<string>>();
    let wrong = 0;
    let rows = 0;
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < 10_000) {
            const i = next++;
            // half the traffic on 4 hot tenants, the rest spread over all 200
            const t = (i % 2 === 0 ? hot[i % 4] : tenants[(i * 7919) % tenants.length]) as Tenant;
            const r = await s
              .forTenant(t)
              .query<{ tenant_id: string; cur: string; pid: number; sess: string }>(
                "SELECT tenant_id, tenantscope.current_tenant_id() AS cur, pg_backend_pid() AS pid, split_part(current_setting('app.tenant_id'), ':', 1) AS sess FROM customers",
              );
            rows += r.rows.length;
            if (r.rows.length !== 2) wrong++;
            for (const row of r.rows) {
              if (row.tenant_id !== t.id || row.cur !== t.id) wrong++;
              if (row.sess === 's') {
                const set = lanePids.get(row.pid) ?? new Set<string>();
                set.add(t.id);
                lanePids.set(row.pid, set);
              }
            }
          }
        }),
      );
      const st = s.stats();
      expect(rows).toBe(20_000);
      expect(wrong).toBe(0);
      expect(st.hotQueries).toBeGreaterThan(1000);
      expect(st.multiplexedQueries).toBeGreaterThan(1000);
      if (TEST_POOLER === 'transaction') {
        // behind a transaction pooler no session binding is ever made
        expect(lanePids.size).toBe(0);
      } else {
        expect(lanePids.size).toBeGreaterThan(0);
        for (const set of lanePids.values()) expect(set.size).toBe(1); // a hot connection never served two tenants
      }
    } finally {
      await s.end();
    }
  });

  it("a hot lane's session binding is useless on any other connection", async () => {
    const s = fast({ hot: { maxTenants: 1, promoteAfter: 1 } });
    try {
      const acme = s.forTenant(tenants[0] as Tenant);
      await acme.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 300)); // promotion connects in the background
      const v = await acme.query<{ v: string; pid: number }>(
        "SELECT current_setting('app.tenant_id') AS v, pg_backend_pid() AS pid",
      );
      expect(v.rows[0]?.v).toMatch(new RegExp(`^${LANE_KIND}:t000:[0-9a-f]{64}$`));
      expect(s.stats().hotQueries).toBeGreaterThan(0);
      const raw = new pg.Client({ connectionString: fx.db.appUrl });
      await raw.connect();
      try {
        await raw.query("SELECT set_config('app.tenant_id', $1, false)", [v.rows[0]?.v]);
        const r = await raw.query(
          'SELECT tenantscope.current_tenant_id() AS t, (SELECT count(*)::int FROM customers) AS n',
        );
        expect(r.rows[0]).toEqual({ t: null, n: 0 });
      } finally {
        await raw.end();
      }
      // and through another tenant's statement
      const other = await s
        .forTenant(tenants[1] as Tenant)
        .query<{ n: number }>("SELECT count(*)::int AS n FROM customers WHERE tenant_id = 't000'");
      expect(other.rows[0]?.n).toBe(0);
    } finally {
      await s.end();
    }
  });

  it('session-touching text never runs on a hot lane, so the lane keeps its binding', async () => {
    const s = fast({ hot: { maxTenants: 1, promoteAfter: 1 } });
    try {
      const acme = s.forTenant(tenants[0] as Tenant);
      await acme.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 300));
      await acme.query('RESET ALL');
      await acme.query("SELECT set_config('app.tenant_id', '', false)");
      const r = await acme.query<{ n: number; k: string }>(
        "SELECT count(*)::int AS n, split_part(current_setting('app.tenant_id'), ':', 1) AS k FROM customers",
      );
      expect(r.rows[0]).toEqual({ n: 2, k: LANE_KIND });
    } finally {
      await s.end();
    }
  });

  it('a failing statement retires the hot lane (its connection is closed) and the tenant carries on', async () => {
    const s = fast({ hot: { maxTenants: 1, promoteAfter: 1 } });
    try {
      const acme = s.forTenant(tenants[0] as Tenant);
      await acme.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 300));
      const lane = await acme.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await expect(acme.query('SELECT 1/0')).rejects.toMatchObject({ code: 'PG_QUERY_FAILED' });
      await new Promise((r) => setTimeout(r, 300));
      const su = new pg.Client({ connectionString: fx.db.superUrl });
      await su.connect();
      const alive = await su.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [lane.rows[0]?.pid]);
      await su.end();
      // behind a pooler the server connection is the pooler's; the lane's client connection was closed
      if (TEST_POOLER === 'none') expect(alive.rowCount).toBe(0);
      const after = await acme.query<{ n: number }>('SELECT count(*)::int AS n FROM customers');
      expect(after.rows[0]?.n).toBe(2);
    } finally {
      await s.end();
    }
  });

  it('on a multiplexed connection a failing statement does not disturb the others on the wire', async () => {
    const s = scopedPool(
      { connectionString: fx.db.appUrl, max: 2 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler, multiplex: 1 },
    );
    try {
      const results = await Promise.allSettled(
        tenants
          .slice(0, 30)
          .map((t, i) =>
            s
              .forTenant(t)
              .query<{ tenant_id: string }>(
                i % 3 === 0 ? 'SELECT 1/0 AS tenant_id' : 'SELECT tenant_id FROM customers',
              ),
          ),
      );
      results.forEach((r, i) => {
        if (i % 3 === 0) expect(r.status).toBe('rejected');
        else {
          expect(r.status).toBe('fulfilled');
          const rows = (r as PromiseFulfilledResult<pg.QueryResult<{ tenant_id: string }>>).value.rows;
          expect(rows.map((x) => x.tenant_id)).toEqual([ids[i], ids[i]]);
        }
      });
    } finally {
      await s.end();
    }
  });

  it('hot lanes are bounded', async () => {
    const s = fast({ hot: { maxTenants: 3, promoteAfter: 1, windowMs: 60_000 } });
    try {
      for (const t of tenants.slice(0, 20)) await s.forTenant(t).query('SELECT 1');
      await new Promise((r) => setTimeout(r, 300));
      for (const t of tenants.slice(0, 20)) await s.forTenant(t).query('SELECT 1');
      expect(s.stats().hotConnections).toBeLessThanOrEqual(3);
    } finally {
      await s.end();
    }
  });
});
