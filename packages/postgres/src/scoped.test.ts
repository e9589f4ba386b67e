import { isTenantScopeError } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScopedPool, scopedPool } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

let fx: PgFixture;
let scoped: ScopedPool;

beforeAll(async () => {
  fx = await pgFixture('scoped', ['acme', 'globex', 'initech']);
  scoped = scopedPool({ connectionString: fx.db.appUrl, max: 4 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
});
afterAll(async () => {
  await scoped?.end();
  await fx?.close();
});

describe('scoped queries', () => {
  it('sees only its own tenant rows', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    const r = await acme.query<{ tenant_id: string; name: string }>(
      'SELECT tenant_id, name FROM customers ORDER BY id',
    );
    expect(r.rows.length).toBe(3);
    expect(new Set(r.rows.map((x) => x.tenant_id))).toEqual(new Set(['acme']));
    const who = await acme.query<{ t: string }>('SELECT tenantscope.current_tenant_id() AS t');
    expect(who.rows[0]?.t).toBe('acme');
  });

  it('inserts get the tenant from the column default', async () => {
    const globex = scoped.forTenant(await fx.tenant('globex'));
    const r = await globex.query<{ tenant_id: string }>(
      "INSERT INTO notes (body) VALUES ('hello') RETURNING tenant_id",
    );
    expect(r.rows[0]?.tenant_id).toBe('globex');
  });

  it('outside a scoped transaction the raw app role sees no tenant and no rows', async () => {
    const raw = new pg.Client({ connectionString: fx.db.appUrl });
    await raw.connect();
    try {
      const t = await raw.query('SELECT tenantscope.current_tenant_id() AS t');
      expect(t.rows[0].t).toBeNull();
      const c = await raw.query('SELECT count(*)::int AS n FROM customers');
      expect(c.rows[0].n).toBe(0);
      // and the key table is out of reach
      expect(await raw.query('SELECT * FROM tenantscope.binding_key').catch((e) => e.code)).toBe('42501');
      // and forging the setting outside bind() gives nothing either
      await raw.query('BEGIN');
      await raw.query("SELECT set_config('app.tenant_id', 'acme', true)");
      const f = await raw.query('SELECT count(*)::int AS n FROM customers');
      expect(f.rows[0].n).toBe(0);
      await raw.query('ROLLBACK');
    } finally {
      await raw.end();
    }
  });

  it('a single-statement query is pipelined (BEGIN, bind, statement, COMMIT written before any reply)', async () => {
    // Verified end-to-end by round-trip counting in the benchmark; here: the pool is pipelined.
    const c = await scoped.unscopedPool.connect();
    expect((c as unknown as { pipeline: boolean }).pipeline).toBe(true);
    c.release();
  });

  it('transaction() commits on success and rolls back on throw', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    await acme.transaction(async (tx) => {
      await tx.query("INSERT INTO notes (body) VALUES ('tx-ok')");
    });
    await expect(
      acme.transaction(async (tx) => {
        await tx.query("INSERT INTO notes (body) VALUES ('tx-rolled-back')");
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const r = await acme.query<{ body: string }>("SELECT body FROM notes WHERE body LIKE 'tx-%'");
    expect(r.rows.map((x) => x.body)).toEqual(['tx-ok']);
  });
});

describe('cross-tenant', () => {
  it('select, update and delete of another tenant reach 0 rows', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    expect((await acme.query("SELECT * FROM customers WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect((await acme.query("UPDATE customers SET name = 'pwned' WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect((await acme.query("DELETE FROM customers WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect((await acme.query("UPDATE customers SET name = 'pwned'")).rowCount).toBe(3); // its own only
    const globex = scoped.forTenant(await fx.tenant('globex'));
    const g = await globex.query<{ name: string }>('SELECT name FROM customers');
    expect(g.rows.length).toBe(3);
    expect(g.rows.every((x) => x.name.startsWith('globex-'))).toBe(true);
    await acme.query("UPDATE customers SET name = 'acme-customer-' || id");
  });

  it('insert with another tenant id is refused and writes nothing', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    expect(await codeOf(acme.query("INSERT INTO customers (tenant_id, name) VALUES ('globex', 'spy')"))).toBe(
      'PG_QUERY_FAILED',
    );
    expect(
      await codeOf(
        acme.query("UPDATE customers SET tenant_id = 'globex' WHERE id = (SELECT id FROM customers LIMIT 1)"),
      ),
    ).toBe('PG_QUERY_FAILED');
    const globex = scoped.forTenant(await fx.tenant('globex'));
    expect((await globex.query("SELECT 1 FROM customers WHERE name = 'spy'")).rowCount).toBe(0);
    expect((await acme.query('SELECT 1 FROM customers')).rowCount).toBe(3);
  });

  it('a multi-row insert with one foreign row writes nothing at all', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    const err = await codeOf(
      acme.query("INSERT INTO notes (tenant_id, body) VALUES ('acme', 'partial-1'), ('globex', 'partial-2')"),
    );
    expect(err).toBe('PG_QUERY_FAILED');
    expect((await acme.query("SELECT 1 FROM notes WHERE body LIKE 'partial-%'")).rowCount).toBe(0);
  });
});

describe('bad input', () => {
  it('refuses a non-Tenant: string, look-alike object, null', () => {
    for (const bad of ['acme', { id: 'acme', subject: 'x' }, null, undefined, 42]) {
      try {
        scoped.forTenant(bad as never);
        throw new Error('accepted');
      } catch (err) {
        expect(isTenantScopeError(err) && err.code).toBe('NOT_A_TENANT');
      }
    }
  });

  it('refuses empty or non-string SQL and non-array params, writing nothing', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    expect(await codeOf(acme.query(''))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(acme.query(42 as never))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(acme.query('SELECT $1', 'x' as never))).toBe('INVALID_ARGUMENT');
  });

  it('an SQL error is typed, carries no row data and changes nothing', async () => {
    const acme = scoped.forTenant(await fx.tenant('acme'));
    try {
      await acme.query("INSERT INTO customers (id, tenant_id, name) SELECT id, 'acme', 'dup' FROM customers LIMIT 1");
      throw new Error('accepted');
    } catch (err) {
      expect(isTenantScopeError(err) && err.code).toBe('PG_QUERY_FAILED');
      expect((err as Error).message).not.toMatch(/acme-customer|globex/);
      expect((err as { details?: { sqlstate?: string } }).details?.sqlstate).toBe('23505');
    }
    expect(await codeOf(acme.query('SELEC nonsense'))).toBe('PG_QUERY_FAILED');
    expect((await acme.query("SELECT 1 FROM customers WHERE name = 'dup'")).rowCount).toBe(0);
  });

  it('a wrong binding key is refused by the database, typed', async () => {
    const wrong = scopedPool(
      { connectionString: fx.db.appUrl, max: 1 },
      { bindingKey: Buffer.alloc(64, 7), pooler: fx.pooler },
    );
    try {
      expect(await codeOf(wrong.forTenant(await fx.tenant('acme')).query('SELECT 1'))).toBe('PG_BINDING_REFUSED');
    } finally {
      await wrong.end();
    }
  });

  it('a malformed binding key or setting is a config error', () => {
    expect(() => scopedPool({ connectionString: fx.db.appUrl }, { bindingKey: 'short' })).toThrow();
    expect(() =>
      scopedPool(
        { connectionString: fx.db.appUrl },
        { bindingKey: fx.bindingKey, pooler: fx.pooler, setting: "x'; drop" },
      ),
    ).toThrow();
  });
});

describe('pool hygiene', () => {
  it('10,000 interleaved scoped queries across 200 tenants on a pool of 10: 0 wrong-tenant rows', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    const su = new pg.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    await su.query(
      `INSERT INTO customers (tenant_id, name) SELECT t, t || '-c' || i FROM unnest($1::text[]) t, generate_series(1, 2) i`,
      [ids],
    );
    await su.end();
    const tenants = await Promise.all(ids.map((id) => fx.tenant(id)));
    const pool = scopedPool(
      { connectionString: fx.db.appUrl, max: 10 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler },
    );
    let wrong = 0;
    let rows = 0;
    let next = 0;
    const total = 10_000;
    try {
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < total) {
            const i = next++;
            const t = tenants[(i * 7919) % tenants.length];
            if (!t) continue;
            const r = await pool
              .forTenant(t)
              .query<{ tenant_id: string; cur: string }>(
                'SELECT tenant_id, tenantscope.current_tenant_id() AS cur FROM customers',
              );
            rows += r.rows.length;
            for (const row of r.rows) if (row.tenant_id !== t.id || row.cur !== t.id) wrong++;
            if (r.rows.length !== 2) wrong++;
          }
        }),
      );
    } finally {
      await pool.end();
    }
    expect(rows).toBe(20_000);
    expect(wrong).toBe(0);
  });

  it('a checkout after an error sees no tenant (the failed connection is destroyed)', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 1, pipeline: true } as pg.PoolConfig);
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      const before = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await expect(s.forTenant(await fx.tenant('acme')).query('SELECT 1/0')).rejects.toMatchObject({
        code: 'PG_QUERY_FAILED',
      });
      const after = await pool.query<{ pid: number; t: string | null; n: number }>(
        'SELECT pg_backend_pid() AS pid, tenantscope.current_tenant_id() AS t, (SELECT count(*)::int FROM customers) AS n',
      );
      // behind a transaction pooler the server connection is the pooler's to reuse
      if (fx.pooler === 'none') expect(after.rows[0]?.pid).not.toBe(before.rows[0]?.pid);
      expect(after.rows[0]?.t).toBeNull();
      expect(after.rows[0]?.n).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it('a raw checkout of a pooled connection after scoped use sees no tenant', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 1, pipeline: true } as pg.PoolConfig);
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      const first = await s.forTenant(await fx.tenant('acme')).query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const raw = await pool.query<{ pid: number; t: string | null; setting: string | null; n: number }>(
        "SELECT pg_backend_pid() AS pid, tenantscope.current_tenant_id() AS t, current_setting('app.tenant_id', true) AS setting, (SELECT count(*)::int FROM customers) AS n",
      );
      if (fx.pooler === 'none') expect(raw.rows[0]?.pid).toBe(first.rows[0]?.pid); // the same connection, reused
      expect(raw.rows[0]?.t).toBeNull();
      expect(raw.rows[0]?.setting ?? '').toBe('');
      expect(raw.rows[0]?.n).toBe(0);
    } finally {
      await pool.end();
    }
  });
});

describe('placement', () => {
  it('is resolved once per operation, not once per forTenant; schema-per-tenant fails closed per call', async () => {
    const seen: string[] = [];
    const s = scopedPool(
      { connectionString: fx.db.appUrl, max: 1 },
      {
        bindingKey: fx.bindingKey,
        pooler: fx.pooler,
        placement: (t) => {
          seen.push(t.id);
          return (t.id === 'initech' ? { kind: 'schema', schema: 'tenant_initech' } : { tier: 'shared' }) as never;
        },
      },
    );
    try {
      const acme = s.forTenant(await fx.tenant('acme'));
      expect(seen).toEqual([]);
      expect((await acme.query('SELECT 1 FROM customers')).rowCount).toBe(3);
      expect(await acme.transaction(async (tx) => (await tx.query('SELECT 1 FROM customers')).rowCount)).toBe(3);
      const initech = s.forTenant(scopedTenants.initech as never);
      expect(await codeOf(initech.query('SELECT 1 FROM customers'))).toBe('PG_PLACEMENT_UNSUPPORTED');
      expect(seen).toEqual(['acme', 'acme', 'initech']);
    } finally {
      await s.end();
    }
  });
});

const scopedTenants: Record<string, unknown> = {};
beforeAll(async () => {
  scopedTenants.initech = await fx.tenant('initech');
});

describe('user-supplied pools', () => {
  it('works on a plain (non-pipelined) pg.Pool too, with the same isolation', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 2 });
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      const acme = s.forTenant(await fx.tenant('acme'));
      const globex = s.forTenant(await fx.tenant('globex'));
      const [a, g] = await Promise.all([
        acme.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM customers'),
        globex.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM customers'),
      ]);
      expect(a.rows).toEqual([{ tenant_id: 'acme' }]);
      expect(g.rows).toEqual([{ tenant_id: 'globex' }]);
      const n = await acme.transaction(async (tx) => (await tx.query('SELECT 1 FROM customers')).rowCount);
      expect(n).toBe(3);
      const forge = "SET app.tenant_id = 'globex'; SELECT count(*)::int AS n FROM customers WHERE tenant_id = 'globex'";
      if (fx.pooler === 'transaction') {
        // behind a transaction pooler session-touching text must be one statement
        await expect(acme.query(forge)).rejects.toMatchObject({ code: 'PG_QUERY_FAILED' });
      } else {
        const forged = await acme.query<{ n: number }>(forge);
        expect((forged as unknown as { rows: { n: number }[] }[])[1]?.rows[0]?.n).toBe(0);
      }
      const raw = await pool.query('SELECT tenantscope.current_tenant_id() AS t');
      expect(raw.rows[0].t).toBeNull();
    } finally {
      await pool.end();
    }
  });
});

describe('malformed tenants', () => {
  it('a malformed tenant id never becomes a Tenant, so it can never be bound', async () => {
    for (const bad of ['ACME', 'acme:globex', "acme'--", '', 'a'.repeat(64)]) {
      await expect(fx.tenant(bad)).rejects.toMatchObject({ code: expect.stringMatching(/^AUTH_/) });
    }
    const frozenCopy = Object.freeze({ ...(await fx.tenant('acme')) });
    expect(() => scoped.forTenant(frozenCopy as never)).toThrow(expect.objectContaining({ code: 'NOT_A_TENANT' }));
  });
});
