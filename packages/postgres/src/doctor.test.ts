import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DoctorOptions, type DoctorProblem, scopedPool, tenantTableSql } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

let fx: PgFixture;

beforeAll(async () => {
  fx = await pgFixture('doctor', ['acme']);
});
afterAll(async () => {
  await fx?.close();
});

/** Runs doctor as the role behind `url`; returns the problems (empty when it passed). */
async function problemsAs(
  url: string,
  options: DoctorOptions = {},
  key: Uint8Array = fx.bindingKey,
): Promise<DoctorProblem[]> {
  const s = scopedPool({ connectionString: url, max: 1 }, { bindingKey: key, pooler: fx.pooler });
  try {
    await s.doctor(options);
    return [];
  } catch (err) {
    const e = err as { code?: string; details?: { problems?: DoctorProblem[] } };
    if (e.code !== 'PG_DOCTOR_FAILED') throw err;
    return e.details?.problems ?? [];
  } finally {
    await s.end();
  }
}
const codes = (ps: DoctorProblem[]) => ps.map((p) => `${p.code}${p.object ? `:${p.object}` : ''}`);

async function asOwner(sql: string): Promise<void> {
  await fx.owner.query(sql);
}

describe('doctor', () => {
  it('passes the least-privileged app role on a correct schema, and reports the tables', async () => {
    const s = scopedPool({ connectionString: fx.db.appUrl, max: 1 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      const report = await s.doctor();
      expect(report.tables).toEqual(['public.customers', 'public.notes']);
      expect(report.role).toBe(fx.db.appRole);
    } finally {
      await s.end();
    }
  });

  it('refuses a superuser', async () => {
    expect(codes(await problemsAs(fx.db.superUrl))).toContain(`ROLE_SUPERUSER:${new URL(fx.db.superUrl).username}`);
  });

  it('refuses a BYPASSRLS role', async () => {
    const role = fx.db.roleName('bypass');
    const su = new pg.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    await su.query(
      `CREATE ROLE ${role} LOGIN PASSWORD 'scratch-pw' BYPASSRLS; GRANT CONNECT ON DATABASE ${fx.db.name} TO ${role}; GRANT USAGE ON SCHEMA tenantscope TO ${role}`,
    );
    await su.end();
    expect(codes(await problemsAs(fx.db.urlFor(role)))).toContain(`ROLE_BYPASSRLS:${role}`);
  });

  it('refuses a role that can SET ROLE to a BYPASSRLS role', async () => {
    const priv = fx.db.roleName('privileged');
    const member = fx.db.roleName('member');
    const su = new pg.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    await su.query(
      `CREATE ROLE ${priv} NOLOGIN BYPASSRLS; CREATE ROLE ${member} LOGIN PASSWORD 'scratch-pw'; GRANT ${priv} TO ${member}; GRANT CONNECT ON DATABASE ${fx.db.name} TO ${member}`,
    );
    await su.end();
    expect(codes(await problemsAs(fx.db.urlFor(member)))).toContain(`ROLE_CAN_BECOME_PRIVILEGED:${priv}`);
  });

  it('refuses the owner role', async () => {
    const c = codes(await problemsAs(fx.db.ownerUrl));
    expect(c).toContain('ROLE_OWNS_TABLE:public.customers');
    expect(c).toContain('ROLE_OWNS_TABLE:public.notes');
  });

  it('refuses a tenant table without FORCE', async () => {
    await asOwner('ALTER TABLE notes NO FORCE ROW LEVEL SECURITY');
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['RLS_NOT_FORCED:public.notes']);
    } finally {
      await asOwner('ALTER TABLE notes FORCE ROW LEVEL SECURITY');
    }
  });

  it('refuses a tenant table without ENABLE', async () => {
    await asOwner('ALTER TABLE notes DISABLE ROW LEVEL SECURITY');
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['RLS_NOT_ENABLED:public.notes']);
    } finally {
      await asOwner('ALTER TABLE notes ENABLE ROW LEVEL SECURITY');
    }
  });

  it('refuses a tenant table without its policy', async () => {
    await asOwner('DROP POLICY tenantscope_isolation ON notes');
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['POLICY_MISSING:public.notes']);
    } finally {
      await asOwner(tenantTableSql({ table: 'notes' }));
    }
  });

  it('refuses a new table that has a tenant column but no RLS at all', async () => {
    await asOwner(`CREATE TABLE invoices (id int, tenant_id text); GRANT SELECT ON invoices TO ${fx.db.appRole}`);
    try {
      const c = codes(await problemsAs(fx.db.appUrl));
      expect(c).toEqual([
        'RLS_NOT_ENABLED:public.invoices',
        'RLS_NOT_FORCED:public.invoices',
        'POLICY_MISSING:public.invoices',
        'SYSTEM_COLUMNS_READABLE:public.invoices', // granted SELECT on the whole table: xmin, ctid
      ]);
    } finally {
      await asOwner('DROP TABLE invoices');
    }
  });

  it('refuses an extra permissive policy that does not check the tenant', async () => {
    await asOwner('CREATE POLICY everyone ON notes FOR SELECT USING (true)');
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['POLICY_TOO_BROAD:public.notes.everyone']);
    } finally {
      await asOwner('DROP POLICY everyone ON notes');
    }
  });

  it('refuses a view over a tenant table without security_invoker, and accepts it with', async () => {
    await asOwner(
      `CREATE VIEW customer_names AS SELECT name FROM customers; CREATE VIEW customer_names2 AS SELECT * FROM customer_names;
       GRANT SELECT ON customer_names, customer_names2 TO ${fx.db.appRole}`,
    );
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual([
        'VIEW_NOT_SECURITY_INVOKER:public.customer_names',
        'VIEW_NOT_SECURITY_INVOKER:public.customer_names2',
      ]);
      await asOwner(
        'ALTER VIEW customer_names SET (security_invoker = true); ALTER VIEW customer_names2 SET (security_invoker = true)',
      );
      expect(await problemsAs(fx.db.appUrl)).toEqual([]);
    } finally {
      await asOwner('DROP VIEW customer_names2; DROP VIEW customer_names');
    }
  });

  it('refuses a materialized view over a tenant table', async () => {
    await asOwner(
      `CREATE MATERIALIZED VIEW all_names AS SELECT name FROM customers; GRANT SELECT ON all_names TO ${fx.db.appRole}`,
    );
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['MATVIEW_OVER_TENANT_TABLE:public.all_names']);
    } finally {
      await asOwner('DROP MATERIALIZED VIEW all_names');
    }
  });

  it('refuses a role that may create temp tables unless allowed', async () => {
    const su = new pg.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    await su.query(`GRANT TEMP ON DATABASE ${fx.db.name} TO ${fx.db.appRole}`);
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual([`TEMP_TABLES_ALLOWED:${fx.db.appRole}`]);
      expect(await problemsAs(fx.db.appUrl, { allowTempTables: true })).toEqual([]);
    } finally {
      await su.query(`REVOKE TEMP ON DATABASE ${fx.db.name} FROM ${fx.db.appRole}`);
      await su.end();
    }
  });

  it('refuses a binding key that does not match the installed one', async () => {
    expect(codes(await problemsAs(fx.db.appUrl, {}, Buffer.alloc(64, 1)))).toEqual(['BINDING_FAILED']);
  });

  it('refuses cross-tenant statistics granted back to the app role; allowSideChannels makes them warnings', async () => {
    const su = new pg.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    const app = fx.db.appRole;
    const grants = `GRANT SELECT ON pg_stat_user_tables TO ${app}; GRANT SELECT (reltuples) ON pg_class TO ${app}; GRANT EXECUTE ON FUNCTION pg_current_snapshot() TO ${app}`;
    await su.query(grants);
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual([
        'STATS_READABLE:pg_stat_user_tables',
        'CATALOG_COUNTS_READABLE:pg_catalog.pg_class.reltuples',
        'ACTIVITY_READABLE:pg_current_snapshot()',
      ]);
      const s = scopedPool(
        { connectionString: fx.db.appUrl, max: 1 },
        { bindingKey: fx.bindingKey, pooler: fx.pooler },
      );
      try {
        const report = await s.doctor({ allowSideChannels: true });
        expect(report.warnings.map((w) => w.code)).toEqual(
          expect.arrayContaining(['STATS_READABLE', 'CATALOG_COUNTS_READABLE', 'ACTIVITY_READABLE']),
        );
      } finally {
        await s.end();
      }
    } finally {
      await su.query(grants.replace(/GRANT/g, 'REVOKE').replace(/ TO /g, ' FROM '));
      await su.end();
    }
  });

  it('refuses a tenant table fed by a shared sequence, and a sequence the app role may use', async () => {
    await asOwner(
      `CREATE TABLE tickets (id bigserial PRIMARY KEY, tenant_id text NOT NULL);
       ${tenantTableSql({ table: 'tickets', grantTo: fx.db.appRole, allowSharedSequence: true })}
       GRANT USAGE ON SEQUENCE tickets_id_seq TO ${fx.db.appRole}`,
    );
    try {
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual([
        'SHARED_SEQUENCE:public.tickets.id',
        'UNIQUE_ACROSS_TENANTS:public.tickets.tickets_pkey', // a guessable bigint across tenants
        'SEQUENCE_USABLE:public.tickets_id_seq',
      ]);
      // allowSideChannels does not cover these: the owner can always fix them
      expect(codes(await problemsAs(fx.db.appUrl, { allowSideChannels: true }))).toHaveLength(3);
    } finally {
      await asOwner('DROP TABLE tickets');
    }
  });

  it('refuses a unique index without the tenant column (a conflicting insert says another tenant has the value)', async () => {
    await asOwner(
      `CREATE TABLE members (id uuid PRIMARY KEY, tenant_id text NOT NULL, email text NOT NULL, slug text NOT NULL,
         UNIQUE (email), UNIQUE (tenant_id, slug));
       ${tenantTableSql({ table: 'members', idColumn: 'id', grantTo: fx.db.appRole })}`,
    );
    try {
      // the uuid primary key is exempt (not guessable), (tenant_id, slug) is per tenant
      expect(codes(await problemsAs(fx.db.appUrl))).toEqual(['UNIQUE_ACROSS_TENANTS:public.members.members_email_key']);
    } finally {
      await asOwner('DROP TABLE members');
    }
  });

  it('lists every problem at once', async () => {
    const c = codes(await problemsAs(fx.db.superUrl));
    expect(c).toEqual(expect.arrayContaining(['ROLE_OWNS_TABLE:public.customers', 'ROLE_OWNS_TABLE:public.notes']));
    expect(c.length).toBeGreaterThanOrEqual(4);
  });
});
