import type { Tenant } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { inject } from 'vitest';
import { installSideChannelGuards } from '../side-channels.ts';
import { installTenantScope, type Queryable, tenantTableSql } from '../sql.ts';
import { createScratchDatabase, type ScratchDatabase } from './scratch.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** Superuser URL of the PostgreSQL the suites use (test/setup/services/postgres.ts). */
    databaseUrl: string;
  }
}

/**
 * The pooler in front of the suite's PostgreSQL: `DATABASE_POOLER=transaction` when DATABASE_URL
 * points at PgBouncer in transaction mode (.ci/passes.d/25-pgbouncer.sh), else 'none'.
 */
export const TEST_POOLER: 'none' | 'transaction' =
  process.env.DATABASE_POOLER === 'transaction' ? 'transaction' : 'none';

/**
 * `url` with host and port of DATABASE_DIRECT_URL (PostgreSQL itself, not the pooler), for what
 * needs a direct session (LISTEN, a raw look at a backend). Unchanged when that is not set.
 */
export function directUrl(url: string): string {
  const direct = process.env.DATABASE_DIRECT_URL;
  if (!direct) return url;
  const u = new URL(url);
  const d = new URL(direct);
  u.hostname = d.hostname;
  u.port = d.port;
  return u.toString();
}

export interface PgFixture {
  /** The pooler mode to declare (`TEST_POOLER`). */
  pooler: 'none' | 'transaction';
  db: ScratchDatabase;
  /** Owner pool (tables' owner, installed tenantscope). */
  owner: pg.Pool;
  /** Raw app-role pool (pipelined), for raw checkouts in hygiene tests. */
  bindingKey: Buffer;
  tenant(id: string): Promise<Tenant>;
  close(): Promise<void>;
}

/** The fixture's tenant tables `customers` and `notes` (idempotent), made tenant tables for `appRole`. */
export async function createFixtureTables(owner: Queryable, appRole: string): Promise<void> {
  await owner.query(`
    CREATE TABLE IF NOT EXISTS customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL, email text);
    CREATE TABLE IF NOT EXISTS notes (id uuid PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
  `);
  await owner.query(tenantTableSql({ table: 'customers', idColumn: 'id', indexColumns: ['id'], grantTo: appRole }));
  await owner.query(tenantTableSql({ table: 'notes', idColumn: 'id', grantTo: appRole }));
}

/**
 * One scratch database per test file: tenantscope installed by the owner role, a tenant table
 * `customers` (and `notes`) with uuid ids, `rows` rows seeded per tenant in `tenants`, and (unless
 * `sideChannelGuards: false`) `installSideChannelGuards` run by the superuser.
 */
export async function pgFixture(
  label: string,
  tenants: string[],
  rows = 3,
  options: { sideChannelGuards?: boolean } = {},
): Promise<PgFixture> {
  const db = await createScratchDatabase(inject('databaseUrl'), label);
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 3 });
  const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
  await createFixtureTables(owner, db.appRole);
  // Seed as the owner with RLS forced: bind nothing, so go through a superuser insert.
  const su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  // No cross-tenant statistics for PUBLIC in this database (doctor refuses them).
  if (options.sideChannelGuards !== false) await installSideChannelGuards(su);
  await su.query(
    `INSERT INTO customers (tenant_id, name, email)
     SELECT t, t || '-customer-' || i, t || i || '@example.test' FROM unnest($1::text[]) t, generate_series(1, $2) i`,
    [tenants, rows],
  );
  await su.end();
  const issuer = await createTestIssuer();
  return {
    pooler: TEST_POOLER,
    db,
    owner,
    bindingKey,
    tenant: (id) => issuer.tenant(id),
    async close() {
      await owner.end();
      await db.drop();
    },
  };
}
