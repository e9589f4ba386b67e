/**
 * Behind PgBouncer in transaction mode (Debian's 1.18: no prepared-statement tracking, default
 * reset behaviour): no tenant binding or session state outlives its transaction on a server
 * connection, the named bind statement is never assumed, and a pool that declares no pooler
 * refuses to run behind one. Needs PGBOUNCER_URL (PgBouncer in front of a PostgreSQL) and a direct
 * superuser URL to that PostgreSQL (DATABASE_DIRECT_URL, else PG15_URL): .ci/services.d/30-pgbouncer.sh.
 */
import type { Tenant } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installTenantScope, type ScopedPool, scopedPool, tenantTableSql } from './index.ts';
import { detectTransactionPooler } from './pooler.ts';
import { createScratchDatabase, type ScratchDatabase } from './testing/scratch.ts';

const BOUNCER = process.env.PGBOUNCER_URL;
const DIRECT = process.env.DATABASE_DIRECT_URL ?? process.env.PG15_URL;
const skip = !BOUNCER || !DIRECT;
if (skip) {
  console.log(
    '[pooler.test] skipped: set PGBOUNCER_URL and DATABASE_DIRECT_URL (or PG15_URL) - .ci/services.d/30-pgbouncer.sh starts PgBouncer',
  );
}

/** `url` re-pointed at PgBouncer (same role, password and database). */
function viaBouncer(url: string): string {
  const u = new URL(url);
  const b = new URL(BOUNCER as string);
  u.hostname = b.hostname;
  u.port = b.port;
  return u.toString();
}

let db: ScratchDatabase;
let key: Buffer;
let tenants: Tenant[];
const ids = Array.from({ length: 60 }, (_, i) => `p${String(i).padStart(2, '0')}`);

beforeAll(async () => {
  if (skip) return;
  db = await createScratchDatabase(DIRECT as string, 'pooler');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  ({ bindingKey: key } = await installTenantScope(owner, { appRole: db.appRole }));
  await owner.query('CREATE TABLE customers (tenant_id text NOT NULL, name text NOT NULL)');
  await owner.query(tenantTableSql({ table: 'customers', indexColumns: ['name'], grantTo: db.appRole }));
  await owner.end();
  const su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  await su.query(
    `INSERT INTO customers (tenant_id, name) SELECT t, t || '-' || i FROM unnest($1::text[]) t, generate_series(1, 2) i`,
    [ids],
  );
  await su.end();
  const issuer = await createTestIssuer();
  tenants = await Promise.all(ids.map((id) => issuer.tenant(id)));
});
afterAll(async () => {
  await db?.drop();
});

const bounced = (extra: Partial<Parameters<typeof scopedPool>[1]> = {}): ScopedPool =>
  scopedPool(
    { connectionString: viaBouncer(db.appUrl), max: 6 },
    {
      bindingKey: key,
      pooler: 'transaction',
      multiplex: 4,
      hot: { maxTenants: 4, promoteAfter: 5, windowMs: 2000 },
      ...extra,
    },
  );

/** `n` statements from a raw app-role pool through PgBouncer that never binds: how many saw a tenant or a row. */
async function unboundLeaks(n: number): Promise<{ tenant: number; rows: number; state: number }> {
  const raw = new pg.Pool({ connectionString: viaBouncer(db.appUrl), max: 8 });
  const out = { tenant: 0, rows: 0, state: 0 };
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < n) {
          next++;
          const r = await raw.query<{ t: string | null; n: number; sp: string; role: string }>(
            `SELECT tenantscope.current_tenant_id() AS t, (SELECT count(*)::int FROM public.customers) AS n,
                    current_setting('search_path') AS sp, current_user AS role`,
          );
          const row = r.rows[0];
          if (row?.t !== null) out.tenant++;
          out.rows += row?.n ?? 0;
          if (row?.sp !== '"$user", public' || row?.role !== db.appRole) out.state++;
        }
      }),
    );
  } finally {
    await raw.end();
  }
  return out;
}

describe.skipIf(skip)('behind PgBouncer in transaction mode', () => {
  it('the probe proves the transaction pooler, and finds none on the direct connection', async () => {
    const through = await detectTransactionPooler({ connectionString: viaBouncer(db.appUrl) });
    expect(through.transactionPooler).toBe(true);
    const direct = await detectTransactionPooler({ connectionString: db.appUrl });
    expect(direct.transactionPooler).toBe(false);
  });

  it('a pool that declares no pooler refuses to run behind one (PG_POOLER_MISMATCH), and doctor() says so', async () => {
    const s = scopedPool(
      { connectionString: viaBouncer(db.appUrl), max: 2 },
      { bindingKey: key, multiplex: 2, hot: { maxTenants: 2, promoteAfter: 1 } },
    );
    try {
      const t = s.forTenant(tenants[0] as Tenant);
      await expect(t.query('SELECT 1')).rejects.toMatchObject({ code: 'PG_POOLER_MISMATCH' });
      await expect(t.transaction(async () => 1)).rejects.toMatchObject({ code: 'PG_POOLER_MISMATCH' });
      await expect(t.queryUntrusted('SELECT 1')).rejects.toMatchObject({ code: 'PG_POOLER_MISMATCH' });
      const err = await s.doctor().catch((e) => e);
      expect(err).toMatchObject({ code: 'PG_DOCTOR_FAILED' });
      expect((err.details.problems as { code: string }[]).map((p) => p.code)).toContain('POOLER_MISMATCH');
      // 'session' is no better
      const s2 = scopedPool(
        { connectionString: viaBouncer(db.appUrl), max: 1 },
        { bindingKey: key, pooler: 'session' },
      );
      await expect(s2.forTenant(tenants[0] as Tenant).query('SELECT 1')).rejects.toMatchObject({
        code: 'PG_POOLER_MISMATCH',
      });
      await s2.end();
    } finally {
      await s.end();
    }
  });

  it("the same pool on the direct connection passes; 'transaction' declared there is a warning only", async () => {
    const s = scopedPool({ connectionString: db.appUrl, max: 2 }, { bindingKey: key });
    const t = scopedPool({ connectionString: db.appUrl, max: 2 }, { bindingKey: key, pooler: 'transaction' });
    try {
      expect((await s.forTenant(tenants[0] as Tenant).query('SELECT 1 FROM customers')).rowCount).toBe(2);
      const report = await t.doctor({ allowTempTables: true }).catch((e) => {
        if (e.code !== 'PG_DOCTOR_FAILED') throw e;
        return e.details;
      });
      expect((report.warnings as { code: string }[]).map((w) => w.code)).toContain('POOLER_NOT_SEEN');
      expect(((report.problems ?? []) as { code: string }[]).map((p) => p.code)).not.toContain('POOLER_MISMATCH');
    } finally {
      await s.end();
      await t.end();
    }
  });

  it('rejects a bad pooler option at construction', () => {
    expect(() =>
      scopedPool({ connectionString: db.appUrl }, { bindingKey: key, pooler: 'statement' as never }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('4,000 statements over 60 tenants (hot, multiplexed, checked out, transactions): no 42P05/26000, 0 wrong-tenant rows', async () => {
    const s = bounced();
    const errors = new Map<string, number>();
    let wrong = 0;
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 24 }, async () => {
          while (next < 4000) {
            const i = next++;
            const t = (i % 2 === 0 ? tenants[i % 4] : tenants[(i * 7919) % tenants.length]) as Tenant;
            const db = s.forTenant(t);
            try {
              const rows =
                i % 10 === 9
                  ? await db.transaction(
                      async (tx) =>
                        (
                          await tx.query<{ tenant_id: string; cur: string }>(
                            'SELECT tenant_id, tenantscope.current_tenant_id() AS cur FROM customers',
                          )
                        ).rows,
                    )
                  : (
                      await db.query<{ tenant_id: string; cur: string }>(
                        'SELECT tenant_id, tenantscope.current_tenant_id() AS cur FROM customers',
                      )
                    ).rows;
              if (rows.length !== 2) wrong++;
              for (const r of rows) if (r.tenant_id !== t.id || r.cur !== t.id) wrong++;
            } catch (err) {
              const c = String(
                (err as { details?: { sqlstate?: string } }).details?.sqlstate ?? (err as Error).message,
              );
              errors.set(c, (errors.get(c) ?? 0) + 1);
            }
          }
        }),
      );
      const st = s.stats();
      expect(Object.fromEntries(errors)).toEqual({});
      expect(wrong).toBe(0);
      expect(st.hotQueries).toBeGreaterThan(100);
      expect(st.multiplexedQueries).toBeGreaterThan(100);
    } finally {
      await s.end();
    }
  });

  it('leak test: after mixed scoped traffic incl. hot tenants and session-touching text, 500 unbound app-role queries see no tenant and 0 rows', async () => {
    const s = bounced();
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < 3000) {
            const i = next++;
            const t = (i % 3 === 0 ? tenants[i % 4] : tenants[(i * 31) % tenants.length]) as Tenant;
            const db = s.forTenant(t);
            const kind = i % 50;
            if (kind === 1) {
              // session-touching text from trusted code: runs alone, session state reset before COMMIT
              await db.query("SELECT set_config('search_path', 'pg_catalog', false)");
            } else if (kind === 2) {
              await db.query('SET search_path = pg_catalog');
            } else if (kind === 3) {
              await db.queryUntrusted("SELECT set_config('app.tenant_id', current_setting('app.tenant_id'), false)");
            } else if (kind === 4) {
              await db.transaction(async (tx) => {
                await tx.query('SET ROLE NONE');
                await tx.query("SELECT set_config('app.tenant_id', current_setting('app.tenant_id'), false)");
              });
            } else if (kind === 5) {
              // a session advisory lock from trusted code does not outlive its call either
              await db.query('SELECT pg_advisory_lock(42)');
            } else {
              await db.query('SELECT count(*) FROM customers');
            }
          }
        }),
      );
      expect(s.stats().hotQueries).toBeGreaterThan(100);
    } finally {
      await s.end();
    }
    const leaks = await unboundLeaks(500);
    expect(leaks).toEqual({ tenant: 0, rows: 0, state: 0 });
    // and no session advisory lock was left behind on any server connection
    const su = new pg.Client({ connectionString: db.superUrl });
    await su.connect();
    const locks = await su.query(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    await su.end();
    expect(locks.rows[0].n).toBe(0);
    // 3,500 statements through a real PgBouncer: past the default 60 s on a loaded machine (60.4 s
    // seen here at load 24); the assertions are about leaks, not speed.
  }, 180_000);

  it('a hot tenant behind the pooler never gets a session binding', async () => {
    const s = bounced({ hot: { maxTenants: 1, promoteAfter: 1 } });
    try {
      const acme = s.forTenant(tenants[0] as Tenant);
      await acme.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 300));
      const r = await acme.query<{ k: string }>("SELECT split_part(current_setting('app.tenant_id'), ':', 1) AS k");
      expect(r.rows[0]?.k).toBe('x');
      expect(s.stats().hotQueries).toBeGreaterThan(0);
    } finally {
      await s.end();
    }
  });

  it('DSAR-style cursor checkout and queryUntrusted work through the pooler', async () => {
    const s = bounced();
    try {
      const c = await s.cursorCheckout(ids[5] as string, true);
      const r = await c.client.query('SELECT tenant_id FROM customers');
      await c.finish(true);
      expect(r.rows.map((x) => x.tenant_id)).toEqual([ids[5], ids[5]]);
      const u = await s
        .forTenant(tenants[6] as Tenant)
        .queryUntrusted<{ n: number }>('SELECT count(*)::int AS n FROM customers');
      expect(u.rows[0]?.n).toBe(2);
      await expect(
        s.forTenant(tenants[6] as Tenant).query('SET search_path = pg_catalog; SELECT 1'),
      ).rejects.toMatchObject({ code: 'PG_QUERY_FAILED' });
      // nor inside transaction(): text there cannot commit and carry on outside the cleanup
      await expect(
        s
          .forTenant(tenants[6] as Tenant)
          .transaction((tx) => tx.query('COMMIT; SET search_path = pg_catalog; SELECT 1')),
      ).rejects.toMatchObject({ code: 'PG_QUERY_FAILED' });
      expect(await unboundLeaks(50)).toEqual({ tenant: 0, rows: 0, state: 0 });
    } finally {
      await s.end();
    }
  });
});
