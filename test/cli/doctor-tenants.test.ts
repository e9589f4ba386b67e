/**
 * `tenantscope doctor` over tenant databases, through the real bin: the shared database plus a
 * tenant database on the dedicated tier that the placement registry names (provisioned with
 * provisionTenantDatabase). A healthy one is checked and passes (exit 0); RLS disabled there,
 * another tenant's row there and a move stuck paused are each an error with its code and the
 * database (exit 1), and the JSON never names the other tenant.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { placementRegistry } from '@tenantscope/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgFixture, pgFixture } from '../../packages/postgres/src/testing/fixture.ts';
import { type FixtureTenantDatabase, fixtureTenantDatabase } from '../../packages/postgres/src/testing/tenant-db.ts';
import { runCli, writeJson, writeSigningKey } from './helpers.ts';

const SLOW = 180_000;
const SCHEMA = 'tenantscope_placement';
let dir: string;
let fx: PgFixture;
let config: string;
let tenantDb: string;
let tdb: FixtureTenantDatabase;

interface Report {
  ok: boolean;
  findings: { store: string; severity: string; code: string; object?: string; database?: string; message: string }[];
}
const found = (r: Report, severity: string) =>
  r.findings
    .filter((f) => f.severity === severity)
    .map((f) => [f.code, f.database, f.object].filter((x) => x !== undefined).join(':'))
    .sort();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsdoctortdb-'));
  fx = await pgFixture('doctortdbcli', ['acme', 'globex'], 2);
  await placementRegistry({ pool: fx.owner, schema: SCHEMA }).migrate();
  tdb = await fixtureTenantDatabase(fx, 'acme');
  tenantDb = tdb.name;
  await tdb.sql(`INSERT INTO customers (tenant_id, name) VALUES ('acme', 'a1')`);
  await fx.owner.query(
    `INSERT INTO ${SCHEMA}.placements (tenant, store, tier, target) VALUES ('acme', 'postgres', 'dedicated', $1)`,
    [tenantDb],
  );
  await writeSigningKey(dir);
  // The inspect role reads past RLS to count other tenants' rows: here the scratch superuser.
  process.env.DOCTOR_TDB_INSPECT_URL = fx.db.superUrl;
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: ['acme', 'globex'],
      postgres: { url: fx.db.ownerUrl, tables: [{ name: 'customers' }, { name: 'notes' }], pooler: fx.pooler },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
    },
    doctor: {
      postgres: {
        url: fx.db.appUrl,
        tenantDatabases: { inspectUrlEnv: 'DOCTOR_TDB_INSPECT_URL', stuckAfterMs: 60_000 },
      },
    },
  });
}, SLOW);

afterAll(async () => {
  await tdb?.drop();
  await fx?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('tenantscope doctor over tenant databases', () => {
  it(
    'checks the tenant database the registry names: healthy, exit 0; RLS off, a foreign row and a stuck move there, exit 1 with each code and the database',
    async () => {
      const ok = await runCli(['doctor', '--config', config, '--json']);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      const good = JSON.parse(ok.stdout) as Report;
      expect(found(good, 'error')).toEqual([]);
      const info = good.findings.find((f) => f.code === 'PG_TENANT_DBS_CHECKED');
      expect(info?.message).toBe('1 tenant database(s) of 1 tenant(s) checked');

      await tdb.sql(`ALTER TABLE notes DISABLE ROW LEVEL SECURITY;
        INSERT INTO customers (tenant_id, name) VALUES ('globex', 'globex-secret-name')`);
      await fx.owner.query(
        `INSERT INTO ${SCHEMA}.placements (tenant, store, tier, target, state, other_tier, other_target, updated_at)
         VALUES ('globex', 's3', 'shared', NULL, 'paused', 'dedicated', 'globex-bucket', now() - interval '1 hour')`,
      );
      const bad = await runCli(['doctor', '--config', config, '--json']);
      expect(bad.code, bad.stderr).toBe(1);
      const report = JSON.parse(bad.stdout) as Report;
      expect(report.ok).toBe(false);
      expect(found(report, 'error')).toEqual([
        'PLACEMENT_MOVE_STUCK:globex/s3',
        `RLS_NOT_ENABLED:${tenantDb}:public.notes`,
        `TENANT_DB_FOREIGN_ROWS:${tenantDb}:public.customers`,
      ]);
      expect(bad.stdout).not.toContain('globex-secret-name');
      const table = await runCli(['doctor', '--config', config]);
      expect(table.code).toBe(1);
      expect(table.stdout).toContain(`ERROR   postgres RLS_NOT_ENABLED [${tenantDb}: public.notes]`);
    },
    SLOW,
  );
});
