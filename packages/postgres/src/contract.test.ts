/** The shared adapter contract's isolation suite (`@tenantscope/testkit/adapter`) on Postgres, plus the deprecated names. */
import { MemoryAuditSink } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import { testAdapter } from '@tenantscope/testkit/adapter';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExportedRow,
  PG_ERROR_CODES,
  pgError,
  type ScopedPool,
  scopedPool,
  type TenantDb,
  tenantData,
} from './index.ts';
import { tenantTableSql } from './sql.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

let fx: PgFixture;
let scoped: ScopedPool;
const audit = new MemoryAuditSink();

async function superuser<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: fx.db.superUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  fx = await pgFixture('contract', []);
  await fx.owner.query(
    'CREATE TABLE kv (tenant_id text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (tenant_id, key))',
  );
  await fx.owner.query(tenantTableSql({ table: 'kv', grantTo: fx.db.appRole }));
  scoped = scopedPool(
    { connectionString: fx.db.appUrl, max: 3 },
    { bindingKey: fx.bindingKey, pooler: fx.pooler, dsar: { tables: ['kv'], audit } },
  );
});
afterAll(async () => {
  await scoped?.end();
  await fx?.close();
});

testAdapter<TenantDb, ExportedRow>('postgres', async () => ({
  adapter: scoped,
  tenants: [await fx.tenant('acme'), await fx.tenant('globex')],
  put: async (db, key, value) => {
    await db.query(
      'INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value',
      [key, value],
    );
  },
  get: async (db, key) =>
    (await db.query<{ value: string }>('SELECT value FROM kv WHERE key = $1', [key])).rows[0]?.value,
  list: async (db) => (await db.query<{ key: string }>('SELECT key FROM kv')).rows.map((r) => r.key),
  remove: async (db, key) => {
    await db.query('DELETE FROM kv WHERE key = $1', [key]);
  },
  raw: () =>
    superuser(
      async (c) =>
        (
          await c.query<{ tenant: string; key: string; value: string }>(
            'SELECT tenant_id AS tenant, key, value FROM kv',
          )
        ).rows,
    ),
  itemKey: (r) => String(r.row.key),
  itemValue: (r) => String(r.row.value),
}));

describe('tenantData on the pool', () => {
  it('needs the dsar option (INVALID_CONFIG), and refuses a forged tenant first (NOT_A_TENANT)', async () => {
    const bare = scopedPool(
      { connectionString: fx.db.appUrl, max: 1 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler },
    );
    try {
      expect(await codeOf(() => bare.tenantData({ id: 'acme' } as never))).toBe('NOT_A_TENANT');
      expect(await codeOf(async () => bare.tenantData(await fx.tenant('acme')))).toBe('INVALID_CONFIG');
    } finally {
      await bare.end();
    }
  });

  it('the deprecated free function tenantData(scoped, opts) still works and agrees with the method', async () => {
    const initech = await fx.tenant('initech');
    await scoped.forTenant(initech).query("INSERT INTO kv (key, value) VALUES ('a', 'x'), ('b', 'y')");
    const legacy = tenantData(scoped, { tables: ['kv'], audit });
    expect(await legacy.count(initech)).toEqual({ kv: 2 });
    expect(await scoped.tenantData(initech).count()).toEqual({ store: 'postgres', total: 2, parts: { kv: 2 } });
    expect(await legacy.delete(initech)).toEqual({ kv: 2 });
  });

  it('pgError is errorFactory(PG_ERROR_CODES)', () => {
    const e = pgError('PG_QUERY_FAILED', 'failed', { details: { sqlstate: '23505' } });
    expect([e.code, e.status, e.details]).toEqual([
      'PG_QUERY_FAILED',
      PG_ERROR_CODES.PG_QUERY_FAILED,
      { sqlstate: '23505' },
    ]);
  });
});
