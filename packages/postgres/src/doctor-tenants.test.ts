/**
 * The doctor over tenant databases, against real ones: a tenant database provisioned the way the
 * dedicated tier makes it (provisionTenantDatabase), named by the placement registry. A correct one
 * passes; RLS off or not forced there, another tenant's row there, a missing table, an unreachable
 * database and a move stuck in the registry are each reported with their code and the database.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorProblem, DoctorReport, TenantDatabasesOptions } from './index.ts';
import { databaseUrl, placementRegistry, scopedPool } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';
import { type FixtureTenantDatabase, fixtureTenantDatabase } from './testing/tenant-db.ts';

let fx: PgFixture;
let su: pg.Client;
let acmeDb: string;
let tdb: FixtureTenantDatabase;
const SCHEMA = 'tenantscope_placement';

interface Outcome {
  problems: DoctorProblem[];
  warnings: DoctorProblem[];
  databases: DoctorReport['databases'];
}

/** Runs the pool's doctor as the app role with `tenantDatabases`; the findings whether it passed or not. */
async function doctor(extra: Partial<TenantDatabasesOptions> = {}): Promise<Outcome> {
  const s = scopedPool({ connectionString: fx.db.appUrl, max: 1 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
  try {
    const r = await s.doctor({
      tenantDatabases: {
        registry: fx.owner,
        connectionString: (name) => databaseUrl(fx.db.appUrl, name),
        inspectConnectionString: (name) => databaseUrl(fx.db.superUrl, name),
        ...extra,
      },
    });
    return { problems: [], warnings: r.warnings, databases: r.databases };
  } catch (err) {
    const e = err as { code?: string; details?: Outcome };
    if (e.code !== 'PG_DOCTOR_FAILED') throw err;
    return {
      problems: e.details?.problems ?? [],
      warnings: e.details?.warnings ?? [],
      databases: e.details?.databases,
    };
  } finally {
    await s.end();
  }
}
const codes = (ps: DoctorProblem[]) =>
  ps.map((p) => [p.code, p.database, p.object].filter((x) => x !== undefined).join(':'));

async function place(tenant: string, target: string, state = 'active', ageS = 0): Promise<void> {
  await su.query(
    `INSERT INTO ${SCHEMA}.placements (tenant, store, tier, target, state, other_tier, other_target, updated_at)
     VALUES ($1, 'postgres', 'dedicated', $2, $3, CASE WHEN $3 = 'active' THEN NULL ELSE 'shared' END, NULL,
             now() - make_interval(secs => $4))
     ON CONFLICT (tenant, store) DO UPDATE SET target = excluded.target, state = excluded.state,
       other_tier = excluded.other_tier, updated_at = excluded.updated_at`,
    [tenant, target, state, ageS],
  );
}
const unplace = (tenant: string) => su.query(`DELETE FROM ${SCHEMA}.placements WHERE tenant = $1`, [tenant]);

beforeAll(async () => {
  fx = await pgFixture('doctortdb', ['acme', 'globex']);
  su = new pg.Client({ connectionString: fx.db.superUrl });
  await su.connect();
  await placementRegistry({ pool: fx.owner, schema: SCHEMA }).migrate();
  tdb = await fixtureTenantDatabase(fx, 'acme');
  acmeDb = tdb.name;
  await tdb.sql(`INSERT INTO customers (tenant_id, name) VALUES ('acme', 'a1'), ('acme', 'a2')`);
  await place('acme', acmeDb);
}, 120_000);

afterAll(async () => {
  await tdb?.drop();
  await su?.end();
  await fx?.close();
});

describe('doctor over tenant databases', () => {
  it('passes a correctly provisioned tenant database and reports it', async () => {
    const r = await doctor();
    expect(codes(r.problems)).toEqual([]);
    expect(codes(r.warnings).filter((c) => c.startsWith('TENANT_') || c.startsWith('PLACEMENT_'))).toEqual([]);
    expect(r.databases).toEqual([
      { database: acmeDb, tenants: ['acme'], tables: ['public.customers', 'public.notes'] },
    ]);
  });

  it('without an inspect role, says rows of other tenants were not counted (warning)', async () => {
    const r = await doctor({ inspectConnectionString: undefined });
    expect(codes(r.problems)).toEqual([]);
    expect(codes(r.warnings)).toContain(`TENANT_DB_ROWS_NOT_COUNTED:${acmeDb}`);
  });

  it('refuses RLS disabled, or not forced, in a tenant database', async () => {
    await tdb.sql('ALTER TABLE customers DISABLE ROW LEVEL SECURITY; ALTER TABLE notes NO FORCE ROW LEVEL SECURITY');
    try {
      const r = await doctor();
      expect(codes(r.problems)).toEqual(
        expect.arrayContaining([`RLS_NOT_ENABLED:${acmeDb}:public.customers`, `RLS_NOT_FORCED:${acmeDb}:public.notes`]),
      );
    } finally {
      await tdb.sql('ALTER TABLE customers ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY');
    }
    expect(codes((await doctor()).problems)).toEqual([]);
  });

  it("refuses another tenant's row in a tenant database, by count, without naming that tenant", async () => {
    await tdb.sql(`INSERT INTO notes (tenant_id, body) VALUES ('globex', 'globex secret body')`);
    try {
      const r = await doctor();
      expect(codes(r.problems)).toEqual([`TENANT_DB_FOREIGN_ROWS:${acmeDb}:public.notes`]);
      expect(JSON.stringify(r)).not.toMatch(/globex/);
      expect(r.problems[0]?.message).toContain('1 row(s)');
    } finally {
      await tdb.sql(`DELETE FROM notes WHERE tenant_id = 'globex'`);
    }
  });

  it('refuses a tenant table of the shared database missing in the tenant database', async () => {
    await tdb.sql(`ALTER TABLE notes RENAME TO notes_old`);
    try {
      expect(codes((await doctor()).problems)).toContain(`TENANT_DB_TABLE_MISSING:${acmeDb}:public.notes`);
    } finally {
      await tdb.sql(`ALTER TABLE notes_old RENAME TO notes`);
    }
  });

  it('reports a move stuck in the registry: paused is a problem, copying a warning, a recent one nothing', async () => {
    try {
      await place('globex', acmeDb, 'paused', 0);
      await su.query(
        `UPDATE ${SCHEMA}.placements SET tier = 'shared', target = NULL, other_tier = 'dedicated', other_target = $1 WHERE tenant = 'globex'`,
        [acmeDb],
      );
      let r = await doctor({ stuckAfterMs: 60_000 });
      expect(codes([...r.problems, ...r.warnings]).filter((c) => c.startsWith('PLACEMENT_'))).toEqual([]);
      await su.query(`UPDATE ${SCHEMA}.placements SET updated_at = now() - interval '2 hours' WHERE tenant = 'globex'`);
      r = await doctor({ stuckAfterMs: 60_000 });
      expect(codes(r.problems)).toContain('PLACEMENT_MOVE_STUCK:globex/postgres');
      // The destination of the move is checked too, and may hold the moving tenant's rows.
      expect(r.databases?.[0]?.tenants).toEqual(['acme', 'globex']);
      await su.query(`UPDATE ${SCHEMA}.placements SET state = 'copying' WHERE tenant = 'globex'`);
      r = await doctor({ stuckAfterMs: 60_000 });
      expect(codes(r.problems)).toEqual([]);
      expect(codes(r.warnings)).toContain('PLACEMENT_MOVE_STUCK:globex/postgres');
    } finally {
      await unplace('globex');
    }
  });

  it('refuses a tenant database it cannot reach, and checks at most maxDatabases', async () => {
    await place('initech', `${fx.db.name}_nowhere`);
    try {
      const r = await doctor({ timeoutMs: 5000 });
      expect(codes(r.problems)).toEqual([`TENANT_DB_UNREACHABLE:${fx.db.name}_nowhere`]);
      expect(r.databases?.map((d) => d.database)).toEqual([acmeDb]);
      const one = await doctor({ maxDatabases: 1 });
      expect(codes(one.warnings)).toContain('TENANT_DBS_TRUNCATED');
      expect(one.databases?.map((d) => d.database)).toEqual([acmeDb]);
      expect(codes(one.problems)).toEqual([]);
    } finally {
      await unplace('initech');
    }
  });

  it('refuses two tenants placed in one tenant database', async () => {
    await place('globex', acmeDb);
    try {
      expect(codes((await doctor()).problems)).toContain(`TENANT_DB_SHARED:${acmeDb}`);
    } finally {
      await unplace('globex');
    }
  });
});
