import pg from 'pg';
import { inject } from 'vitest';
import { dropTenantDatabase, provisionTenantDatabase } from '../provision.ts';
import { databaseUrl } from '../registry.ts';
import { createFixtureTables, directUrl, type PgFixture } from './fixture.ts';

/** A tenant database of the dedicated tier beside a `pgFixture` (same key, roles and tables). */
export interface FixtureTenantDatabase {
  name: string;
  /** Runs SQL there as the superuser (directly, not through a pooler). */
  sql(text: string, values?: unknown[]): Promise<void>;
  drop(): Promise<void>;
}

/** Provisions `${fx.db.name}_${tenant}` with provisionTenantDatabase and the fixture's tables. */
export async function fixtureTenantDatabase(fx: PgFixture, tenant: string): Promise<FixtureTenantDatabase> {
  const admin = directUrl(inject('databaseUrl'));
  const name = `${fx.db.name}_${tenant}`;
  await provisionTenantDatabase({
    adminConnectionString: admin,
    tenant,
    database: name,
    bindingKey: fx.bindingKey,
    appRole: fx.db.appRole,
    ownerRole: fx.db.ownerRole,
    setup: (c) => createFixtureTables(c, fx.db.appRole),
  });
  return {
    name,
    async sql(text, values = []) {
      const c = new pg.Client({ connectionString: databaseUrl(directUrl(fx.db.superUrl), name) });
      await c.connect();
      try {
        await c.query(text, values);
      } finally {
        await c.end();
      }
    },
    drop: () => dropTenantDatabase({ adminConnectionString: admin, database: name }),
  };
}
