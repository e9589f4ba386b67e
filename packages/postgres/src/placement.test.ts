/**
 * The dedicated tier: acme lives in a database of its own (provisionTenantDatabase), globex and
 * initech in the shared one. The shared tier's isolation corpus runs against acme's database, in
 * which a stray globex row is planted so that the second wall (RLS, still on there) is what hides it.
 * Behind PgBouncer (DATABASE_URL through it) the tenant databases are reached through it too.
 */
import { type Tenant, TenantScopeError } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dropTenantDatabase,
  type PgPlacement,
  provisionTenantDatabase,
  type ScopedPool,
  scopedPool,
  type TenantDb,
  tenantData,
  tenantDatabaseName,
} from './index.ts';
import { createFixtureTables, directUrl, type PgFixture, pgFixture } from './testing/fixture.ts';
import { corpus, foreignRows, Q } from './testing/forgery-corpus.ts';

let fx: PgFixture;
let scoped: ScopedPool;
let acmeTenant: Tenant;
let globexTenant: Tenant;
let acme: TenantDb;
let globex: TenantDb;
/** acme's database, as the app role, the way the app reaches it (through the pooler if there is one). */
let acmeUrl: string;
let acmeDb: string;
const extraDbs: string[] = [];

/** A URL of `role` on `database` of the suite's server (through the pooler, if any). */
function urlOn(database: string, role?: string, direct = false): string {
  const u = new URL(role ? fx.db.urlFor(role) : fx.db.superUrl);
  u.pathname = `/${database}`;
  return direct ? directUrl(u.toString()) : u.toString();
}

async function provision(tenant: string, database: string) {
  extraDbs.push(database);
  return provisionTenantDatabase({
    adminConnectionString: directUrl(fx.db.superUrl),
    tenant,
    database,
    bindingKey: fx.bindingKey,
    appRole: fx.db.appRole,
    ownerRole: fx.db.ownerRole,
    setup: (client) => createFixtureTables(client, fx.db.appRole),
  });
}

async function asSuperuser<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: urlOn(database, undefined, true) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  fx = await pgFixture('placement', ['acme', 'globex', 'initech']);
  acmeDb = `${fx.db.name}_acme`;
  const first = await provision('acme', acmeDb);
  expect(first.created).toBe(true);
  // acme's rows in its own database, and a stray globex row only RLS keeps from acme.
  await asSuperuser(acmeDb, (c) =>
    c.query(`INSERT INTO customers (tenant_id, name) SELECT 'acme', 'acme-dedicated-' || i FROM generate_series(1, 3) i;
             INSERT INTO customers (tenant_id, name) VALUES ('globex', 'globex-planted');
             INSERT INTO notes (tenant_id, body) VALUES ('globex', 'globex-planted-note')`),
  );
  acmeUrl = urlOn(acmeDb, fx.db.appRole);
  scoped = scopedPool(
    { connectionString: fx.db.appUrl, max: 4 },
    {
      bindingKey: fx.bindingKey,
      pooler: fx.pooler,
      placement: (t) => (t.id === 'acme' ? { tier: 'dedicated', connectionString: acmeUrl } : { tier: 'shared' }),
    },
  );
  acmeTenant = await fx.tenant('acme');
  globexTenant = await fx.tenant('globex');
  acme = scoped.forTenant(acmeTenant);
  globex = scoped.forTenant(globexTenant);
}, 60_000);

afterAll(async () => {
  try {
    await scoped?.end();
    for (const d of extraDbs) {
      await dropTenantDatabase({ adminConnectionString: directUrl(fx.db.superUrl), database: d }).catch(
        () => undefined,
      );
    }
  } finally {
    await fx?.close();
  }
}, 60_000);

describe('provisionTenantDatabase', () => {
  it('is idempotent: a second run creates nothing, keeps the rows and re-applies the set-up', async () => {
    const again = await provision('acme', acmeDb);
    extraDbs.pop();
    expect(again).toEqual({ database: acmeDb, created: false });
    const n = await asSuperuser(acmeDb, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM customers'));
    expect(n.rows[0]?.n).toBe(4);
  });

  it('leaves RLS enabled and forced with the policy on every tenant table, and no TEMP/CREATE for the app role', async () => {
    const r = await asSuperuser(acmeDb, (c) =>
      c.query<{ relname: string; on: boolean; forced: boolean; policies: number }>(
        `SELECT c.relname, c.relrowsecurity AS on, c.relforcerowsecurity AS forced,
                (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
         FROM pg_class c WHERE c.relname IN ('customers', 'notes') ORDER BY 1`,
      ),
    );
    expect(r.rows).toEqual([
      { relname: 'customers', on: true, forced: true, policies: 1 },
      { relname: 'notes', on: true, forced: true, policies: 1 },
    ]);
    const privs = await asSuperuser(acmeDb, (c) =>
      c.query<{ temp: boolean; create: boolean }>(
        `SELECT has_database_privilege($1, current_database(), 'TEMP') AS temp,
                has_schema_privilege($1, 'public', 'CREATE') AS create`,
        [fx.db.appRole],
      ),
    );
    expect(privs.rows[0]).toEqual({ temp: false, create: false });
  });

  it('default names are distinct for ids that differ only in punctuation, and plain ids stay readable', () => {
    expect(tenantDatabaseName('acme')).toBe('tenant_acme');
    expect(tenantDatabaseName('a-b')).not.toBe(tenantDatabaseName('a_b'));
    expect(tenantDatabaseName('a'.repeat(63)).length).toBeLessThanOrEqual(63);
    expect(() => tenantDatabaseName('Bad Id')).toThrow();
  });

  it('a failing set-up rolls its DDL back and is typed', async () => {
    const err = await codeOf(
      provisionTenantDatabase({
        adminConnectionString: directUrl(fx.db.superUrl),
        tenant: 'acme',
        database: acmeDb,
        bindingKey: fx.bindingKey,
        appRole: fx.db.appRole,
        ownerRole: fx.db.ownerRole,
        setup: async (c) => {
          await c.query('CREATE TABLE half_done (id int)');
          await c.query('SELEC broken');
        },
      }),
    );
    expect(err).toBe('PG_QUERY_FAILED');
    const t = await asSuperuser(acmeDb, (c) => c.query(`SELECT to_regclass('half_done') AS t`));
    expect(t.rows[0].t).toBeNull();
  });
});

describe('a dedicated tenant and a shared one', () => {
  it('acme reaches its own database and only its rows there; globex stays on the shared one', async () => {
    const a = await acme.query<{ name: string; tenant_id: string; db: string; cur: string }>(
      'SELECT name, tenant_id, current_database() AS db, tenantscope.current_tenant_id() AS cur FROM customers ORDER BY name',
    );
    expect(a.rows.map((r) => r.name)).toEqual(['acme-dedicated-1', 'acme-dedicated-2', 'acme-dedicated-3']);
    expect(new Set(a.rows.map((r) => `${r.db}/${r.tenant_id}/${r.cur}`))).toEqual(new Set([`${acmeDb}/acme/acme`]));
    const g = await globex.query<{ name: string; db: string }>(
      'SELECT name, current_database() AS db FROM customers ORDER BY name',
    );
    expect(g.rows.map((r) => r.name)).toEqual(['globex-customer-1', 'globex-customer-2', 'globex-customer-3']);
    expect(g.rows.every((r) => r.db === fx.db.name)).toBe(true);
  });

  it('writes land in the right database and never in the other', async () => {
    await acme.query("INSERT INTO notes (body) VALUES ('acme-note')");
    await globex.query("INSERT INTO notes (body) VALUES ('globex-note')");
    const ded = await asSuperuser(acmeDb, (c) =>
      c.query<{ tenant_id: string; body: string }>('SELECT tenant_id, body FROM notes ORDER BY body'),
    );
    expect(ded.rows).toEqual([
      { tenant_id: 'acme', body: 'acme-note' },
      { tenant_id: 'globex', body: 'globex-planted-note' },
    ]);
    const shared = await asSuperuser(fx.db.name, (c) =>
      c.query<{ tenant_id: string }>("SELECT tenant_id FROM notes WHERE body IN ('acme-note', 'globex-note')"),
    );
    expect(shared.rows).toEqual([{ tenant_id: 'globex' }]);
  });

  it("cross-tenant select, update, delete and insert reach 0 rows in acme's database (RLS, the second wall)", async () => {
    expect((await acme.query("SELECT * FROM customers WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect((await acme.query("UPDATE customers SET name = 'pwned' WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect((await acme.query("DELETE FROM customers WHERE tenant_id = 'globex'")).rowCount).toBe(0);
    expect(await codeOf(acme.query("INSERT INTO customers (tenant_id, name) VALUES ('globex', 'spy')"))).toBe(
      'PG_QUERY_FAILED',
    );
    expect(await codeOf(acme.transaction(async (tx) => tx.query("UPDATE customers SET tenant_id = 'globex'")))).toBe(
      'PG_QUERY_FAILED',
    );
    const planted = await asSuperuser(acmeDb, (c) =>
      c.query<{ name: string }>("SELECT name FROM customers WHERE tenant_id = 'globex'"),
    );
    expect(planted.rows).toEqual([{ name: 'globex-planted' }]);
  });

  it('a statement without the binding sees 0 rows in the dedicated database too, and a forged setting nothing', async () => {
    const raw = new pg.Client({ connectionString: acmeUrl });
    await raw.connect();
    try {
      expect((await raw.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(0);
      await raw.query('BEGIN');
      await raw.query("SELECT set_config('app.tenant_id', 'acme', true)");
      expect((await raw.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(0);
      await raw.query('ROLLBACK');
      expect(await raw.query('SELECT * FROM tenantscope.binding_key').catch((e) => e.code)).toBe('42501');
    } finally {
      await raw.end();
    }
  });

  it('transaction() and queryUntrusted() go to the placed database too', async () => {
    const n = await acme.transaction(async (tx) => {
      const r = await tx.query<{ db: string }>('SELECT current_database() AS db FROM customers');
      return r.rows.map((x) => x.db);
    });
    expect(n).toEqual([acmeDb, acmeDb, acmeDb]);
    const u = await acme.queryUntrusted<{ n: number }>(Q);
    expect(u.rows[0]).toEqual({ foreign_rows: 0, all_rows: 3 });
  });

  it('DSAR count and export read the placed database', async () => {
    const audit = { events: [] as unknown[], write: async (e: unknown) => void audit.events.push(e) };
    const data = tenantData(scoped, { tables: ['customers'], audit });
    expect(await data.count(acmeTenant)).toEqual({ customers: 3 });
    const rows: string[] = [];
    for await (const r of data.export(acmeTenant)) rows.push(String(r.row.name));
    expect(rows.sort()).toEqual(['acme-dedicated-1', 'acme-dedicated-2', 'acme-dedicated-3']);
    expect(await data.count(globexTenant)).toEqual({ customers: 3 });
  });
});

describe.each([
  ['query', false],
  ['queryUntrusted', true],
] as const)('forgery corpus on the dedicated tier through %s', (_name, untrusted) => {
  it.each(corpus)('%s: 0 foreign rows', async (_label, raw) => {
    const r = await foreignRows(acme, raw.replace('OWNER_ROLE', fx.db.ownerRole), untrusted);
    expect(r.foreign).toBe(0);
    const after = await acme.query<{ foreign_rows: number; all_rows: number }>(Q);
    expect(after.rows[0]).toEqual({ foreign_rows: 0, all_rows: 3 });
  });
});

describe('resolvers', () => {
  const withResolver = (placement: (t: Tenant) => unknown) =>
    scopedPool(
      { connectionString: fx.db.appUrl, max: 2 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler, placement: placement as never },
    );

  it('a sync resolver answering shared keeps the fast path: hot lane and multiplexed statements, same rows', async () => {
    const s = scopedPool(
      { connectionString: fx.db.appUrl, max: 2 },
      {
        bindingKey: fx.bindingKey,
        pooler: fx.pooler,
        multiplex: 2,
        hot: { maxTenants: 1, promoteAfter: 3 },
        placement: () => ({ tier: 'shared' }),
      },
    );
    try {
      const g = s.forTenant(globexTenant);
      for (let i = 0; i < 5; i++) await g.query('SELECT 1');
      // the lane connects (LISTEN + bind_session, one round trip after the connect; slower under load)
      for (let waited = 0; s.stats().hotTenants === 0 && waited < 5000; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const rows = await g.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM customers');
      expect(rows.rows).toEqual([{ tenant_id: 'globex' }]);
      const st = s.stats();
      expect(st.hotQueries).toBeGreaterThan(0);
      expect(st.multiplexedQueries).toBeGreaterThan(0);
      expect(st.tenantPoolsOpened).toBe(0);
    } finally {
      await s.end();
    }
  });

  it('a resolver that throws, rejects or returns garbage fails closed, typed, and writes nothing', async () => {
    const bad: [string, (t: Tenant) => unknown, string][] = [
      [
        'throws',
        () => {
          throw new Error(`registry down ${acmeUrl}`);
        },
        'PG_PLACEMENT_FAILED',
      ],
      ['rejects', () => Promise.reject(new Error('registry down')), 'PG_PLACEMENT_FAILED'],
      ['null', () => null, 'PG_PLACEMENT_INVALID'],
      ['a string', () => 'shared', 'PG_PLACEMENT_INVALID'],
      ['unknown tier', () => ({ tier: 'other' }), 'PG_PLACEMENT_INVALID'],
      ['dedicated without URL', () => ({ tier: 'dedicated' }), 'PG_PLACEMENT_INVALID'],
      [
        'not a postgres URL',
        () => ({ tier: 'dedicated', connectionString: 'http://127.0.0.1/x' }),
        'PG_PLACEMENT_INVALID',
      ],
      [
        'URL without database',
        () => ({ tier: 'dedicated', connectionString: 'postgres://127.0.0.1' }),
        'PG_PLACEMENT_INVALID',
      ],
      ['async garbage', async () => ({ tier: 42 }), 'PG_PLACEMENT_INVALID'],
      ['schema tier', () => ({ kind: 'schema', schema: 'x' }), 'PG_PLACEMENT_UNSUPPORTED'],
    ];
    for (const [label, resolver, code] of bad) {
      const s = withResolver(resolver);
      try {
        const db = s.forTenant(globexTenant);
        const got = [
          await codeOf(db.query("INSERT INTO notes (body) VALUES ('must-not-exist')")),
          await codeOf(db.transaction(async (tx) => tx.query("INSERT INTO notes (body) VALUES ('must-not-exist')"))),
          await codeOf(db.queryUntrusted('SELECT 1')),
        ];
        expect(got, label).toEqual([code, code, code]);
      } finally {
        await s.end();
      }
    }
    const n = await globex.query("SELECT 1 FROM notes WHERE body = 'must-not-exist'");
    expect(n.rowCount).toBe(0);
  });

  it('no error message carries the connection string (it holds a password)', async () => {
    const s = withResolver(() => ({ tier: 'dedicated', connectionString: 'https://u:secret-pw@127.0.0.1/db' }));
    try {
      const err = await s
        .forTenant(globexTenant)
        .query('SELECT 1')
        .catch((e: Error) => e);
      expect(String((err as Error).message)).not.toContain('secret-pw');
    } finally {
      await s.end();
    }
  });

  it("a typed error from the resolver (e.g. a paused tenant's retryable error) reaches the caller unchanged", async () => {
    const s = withResolver(() => {
      throw new TenantScopeError('TENANT_MOVING', 'paused', { status: 503 });
    });
    try {
      expect(await codeOf(s.forTenant(globexTenant).query('SELECT 1'))).toBe('TENANT_MOVING');
    } finally {
      await s.end();
    }
  });

  it('an async resolver works, and a moved tenant reaches its new database on the next call of the same handle', async () => {
    let target: PgPlacement = { tier: 'shared' };
    const s = withResolver(async () => {
      await new Promise((r) => setTimeout(r, 1));
      return target;
    });
    try {
      const db = s.forTenant(acmeTenant);
      const where = async () =>
        (
          await db.query<{ db: string; n: number }>(
            'SELECT current_database() AS db, count(*)::int AS n FROM customers',
          )
        ).rows[0];
      expect(await where()).toEqual({ db: fx.db.name, n: 3 });
      target = { tier: 'dedicated', connectionString: acmeUrl };
      expect(await where()).toEqual({ db: acmeDb, n: 3 });
      target = { tier: 'shared' };
      expect(await where()).toEqual({ db: fx.db.name, n: 3 });
    } finally {
      await s.end();
    }
  });
});

describe('tenant database checks', () => {
  it('refuses a superuser connection to a tenant database, and one without tenantscope or RLS', async () => {
    const su = withPool(urlOn(acmeDb));
    const bare = `${fx.db.name}_bare`;
    extraDbs.push(bare);
    await asSuperuser(fx.db.name, (c) => c.query(`CREATE DATABASE ${bare}`));
    await asSuperuser(bare, (c) =>
      c.query(
        `GRANT CONNECT ON DATABASE ${bare} TO ${fx.db.appRole}; CREATE TABLE t (tenant_id text); GRANT SELECT ON t TO ${fx.db.appRole}`,
      ),
    );
    const noScope = withPool(urlOn(bare, fx.db.appRole));
    try {
      const e1 = await su
        .forTenant(acmeTenant)
        .query('SELECT 1')
        .catch((e) => e);
      expect(e1).toMatchObject({ code: 'PG_PLACEMENT_REFUSED' });
      expect(e1.details.problems).toContain('ROLE_SUPERUSER');
      const e2 = await noScope
        .forTenant(acmeTenant)
        .query('SELECT 1')
        .catch((e) => e);
      expect(e2).toMatchObject({ code: 'PG_PLACEMENT_REFUSED' });
      expect(e2.details.problems).toEqual(expect.arrayContaining(['NOT_INSTALLED', 'RLS_OFF']));
      // refused every time, not only on first use, without a new connection storm per call
      for (let i = 0; i < 5; i++) {
        expect(await codeOf(noScope.forTenant(acmeTenant).query('SELECT 1'))).toBe('PG_PLACEMENT_REFUSED');
      }
      expect(noScope.stats().tenantPoolsOpened).toBe(1);
      expect(noScope.stats().tenantPools).toBe(0);
    } finally {
      await su.end();
      await noScope.end();
    }
  });

  function withPool(url: string) {
    return scopedPool(
      { connectionString: fx.db.appUrl, max: 2 },
      {
        bindingKey: fx.bindingKey,
        pooler: fx.pooler,
        placement: () => ({ tier: 'dedicated', connectionString: url }),
      },
    );
  }
});

describe('the bounded LRU of tenant-database pools', () => {
  const BOUND = 2;
  const PER_POOL = 2;
  const TENANTS = BOUND * 3;
  let ids: string[];
  let tenants: Tenant[];
  let dbOf: Map<string, string>;

  beforeAll(async () => {
    ids = Array.from({ length: TENANTS }, (_, i) => `lru${i}`);
    dbOf = new Map(ids.map((id) => [id, `${fx.db.name}_${id}`]));
    for (const id of ids) {
      const d = dbOf.get(id) as string;
      await provision(id, d);
      await asSuperuser(d, (c) => c.query('INSERT INTO customers (tenant_id, name) VALUES ($1, $1)', [id]));
    }
    tenants = await Promise.all(ids.map((id) => fx.tenant(id)));
  }, 120_000);

  /** Connections of the app role to the LRU tenants' databases, seen by the server itself (one watcher connection). */
  async function appConnections(): Promise<number> {
    if (!watcher) {
      watcher = new pg.Client({ connectionString: urlOn(fx.db.name, undefined, true) });
      await watcher.connect();
    }
    const r = await watcher.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND datname = ANY($2)',
      [fx.db.appRole, [...dbOf.values()]],
    );
    return r.rows[0]?.n ?? -1;
  }
  let watcher: pg.Client | undefined;
  afterAll(async () => {
    await watcher?.end();
  });

  const lruPool = (extra: Record<string, unknown> = {}) =>
    scopedPool(
      // Direct: these tests count our pools' connections, not a pooler's.
      { connectionString: directUrl(fx.db.appUrl), max: 2 },
      {
        bindingKey: fx.bindingKey,
        pooler: 'none',
        maxTenantPools: BOUND,
        tenantPoolMax: PER_POOL,
        placement: (t) => ({
          tier: 'dedicated',
          connectionString: urlOn(dbOf.get(t.id) as string, fx.db.appRole, true),
        }),
        ...extra,
      },
    );

  it(`${TENANTS} tenants on ${BOUND} pools of ${PER_POOL}: never more pools or connections, each tenant only its own rows, none left after end()`, async () => {
    const s = lruPool({ tenantPoolAcquireTimeoutMs: 30_000 });
    let wrong = 0;
    let ops = 0;
    let maxPools = 0;
    let maxConns = 0;
    let sampling = Promise.resolve();
    const sampler = setInterval(() => {
      maxPools = Math.max(maxPools, s.stats().tenantPools);
      sampling = sampling.then(async () => {
        maxConns = Math.max(maxConns, await appConnections());
      });
    }, 25);
    try {
      // Two sweeps over every tenant in opposite orders, at once; 4 concurrent queries per visit.
      const sweep = async (order: Tenant[]) => {
        for (const t of order) {
          await Promise.all(
            Array.from({ length: 4 }, async () => {
              const r = await s.forTenant(t).query<{ name: string }>('SELECT name FROM customers');
              ops++;
              if (r.rows.length !== 1 || r.rows[0]?.name !== t.id) wrong++;
            }),
          );
        }
      };
      await Promise.all([sweep(tenants), sweep([...tenants].reverse())]);
    } finally {
      clearInterval(sampler);
      await sampling;
      await s.end();
    }
    expect(ops).toBe(TENANTS * 8);
    expect(wrong).toBe(0);
    expect(s.stats().tenantPoolsPeak).toBe(BOUND);
    expect(maxPools).toBeLessThanOrEqual(BOUND);
    expect(maxConns).toBeGreaterThan(0);
    expect(maxConns).toBeLessThanOrEqual(BOUND * PER_POOL);
    await new Promise((r) => setTimeout(r, 200));
    expect(await appConnections()).toBe(0);
  }, 60_000);

  it('evicting a pool waits for its in-flight operation; the newcomer waits for the slot', async () => {
    const s = lruPool({ maxTenantPools: 1, tenantPoolMax: 1 });
    try {
      const order: string[] = [];
      const [t0, t1] = tenants as [Tenant, Tenant];
      await s.forTenant(t0).query('SELECT 1');
      const slow = s
        .forTenant(t0)
        .query<{ name: string }>('SELECT name, pg_sleep(0.4) FROM customers')
        .then((r) => {
          order.push('slow');
          return r.rows[0]?.name;
        });
      await new Promise((r) => setTimeout(r, 50));
      const other = s
        .forTenant(t1)
        .query<{ name: string }>('SELECT name FROM customers')
        .then((r) => {
          order.push('other');
          return r.rows[0]?.name;
        });
      expect(await Promise.all([slow, other])).toEqual([t0.id, t1.id]);
      expect(order).toEqual(['slow', 'other']);
      expect(s.stats().tenantPoolsPeak).toBe(1);
    } finally {
      await s.end();
    }
  });

  it('a slot that never frees fails with PG_UNAVAILABLE after tenantPoolAcquireTimeoutMs', async () => {
    const s = lruPool({ maxTenantPools: 1, tenantPoolMax: 1, tenantPoolAcquireTimeoutMs: 100 });
    try {
      const [t0, t1] = tenants as [Tenant, Tenant];
      const slow = s.forTenant(t0).query('SELECT pg_sleep(0.6)');
      await new Promise((r) => setTimeout(r, 100));
      expect(await codeOf(s.forTenant(t1).query('SELECT 1'))).toBe('PG_UNAVAILABLE');
      await slow;
    } finally {
      await s.end();
    }
  });
});
