import { createHash } from 'node:crypto';
import { TenantScopeError } from '@tenantscope/core';
import pg from 'pg';
import { assertBindableTenantId } from './binding.ts';
import { wrapDriverError } from './errors.ts';
import { installSideChannelGuards } from './side-channels.ts';
import { installTenantScope, quoteIdent } from './sql.ts';

export interface ProvisionTenantDatabaseOptions {
  /**
   * A superuser (or a role with CREATEDB) on the server, connected DIRECTLY to any existing
   * database: `CREATE DATABASE` cannot run through a transaction pooler. Required.
   */
  adminConnectionString: string;
  /** The tenant id the database is for (a verified Tenant's `id`). Required. */
  tenant: string;
  /** The binding key the application's `scopedPool` uses (the same key in every database). Required. */
  bindingKey: Uint8Array | string;
  /** The application role: gets CONNECT on the database and `tenantscope`'s functions. Required. */
  appRole: string;
  /**
   * Owner of the database and its schema `public`: installs `tenantscope` and runs `setup` (through
   * `SET ROLE` when the admin is a superuser). Not a superuser, not the app role. Default: the admin role.
   */
  ownerRole?: string;
  /** Database name. Default `tenantDatabaseName(tenant)` (`tenant_<id>`, or a hashed form). */
  database?: string;
  /**
   * The application's DDL, run in one transaction as the owner after `tenantscope` is installed:
   * create the tables (idempotently, `IF NOT EXISTS`) and run `tenantTableSql` on each.
   */
  setup: (client: pg.ClientBase) => Promise<void>;
  /** Same as `installTenantScope`'s `setting`. Default `app.tenant_id`. */
  setting?: string;
  /**
   * Run `installSideChannelGuards` in the new database (needs a superuser admin). Default true when
   * the admin is a superuser; with a CREATEDB-only admin set false (or run it yourself).
   */
  sideChannelGuards?: boolean;
}

export interface ProvisionResult {
  /** The database name. */
  database: string;
  /** Whether this call created it (false: it existed; everything else was re-applied). */
  created: boolean;
}

const PLAIN = /^[a-z0-9]{1,50}$/;

/**
 * The default database name of a tenant: `tenant_<id>` when the id is plain letters and digits,
 * else `tenant_<letters and digits of the id>_<16 hex of its SHA-256>` (distinct ids never share a name).
 */
export function tenantDatabaseName(tenant: string): string {
  assertBindableTenantId(tenant);
  if (PLAIN.test(tenant)) return `tenant_${tenant}`;
  const hash = createHash('sha256').update(tenant).digest('hex').slice(0, 16);
  return `tenant_${tenant.replace(/[^a-z0-9]/g, '').slice(0, 30)}_${hash}`;
}

/** `url` pointing at `database` instead (same host, port, role, options). */
function withDatabase(url: string, database: string): string {
  quoteIdent(database, 'database');
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Creates a tenant's own database if absent, and (every time, idempotently) locks it down,
 * installs `tenantscope` with the application's binding key, the side-channel guards, and the
 * application's tables (`setup`). Safe to run again and concurrently for the same tenant.
 * The database is for one tenant, and RLS is still on in it: a statement without the binding sees nothing.
 */
export async function provisionTenantDatabase(options: ProvisionTenantDatabaseOptions): Promise<ProvisionResult> {
  if (!options || typeof options.adminConnectionString !== 'string') {
    throw new TenantScopeError('INVALID_CONFIG', 'provisionTenantDatabase needs adminConnectionString');
  }
  if (typeof options.setup !== 'function') {
    throw new TenantScopeError('INVALID_CONFIG', 'provisionTenantDatabase needs setup(client)');
  }
  if (options.bindingKey === undefined) {
    throw new TenantScopeError('INVALID_CONFIG', 'provisionTenantDatabase needs the bindingKey of the application');
  }
  assertBindableTenantId(options.tenant);
  const database = options.database ?? tenantDatabaseName(options.tenant);
  const db = quoteIdent(database, 'database');
  const app = quoteIdent(options.appRole, 'appRole');
  const owner = options.ownerRole === undefined ? undefined : quoteIdent(options.ownerRole, 'ownerRole');

  let created = false;
  let superuser = false;
  const admin = new pg.Client({ connectionString: options.adminConnectionString });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    superuser =
      (await admin.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user')).rows[0]
        ?.s === true;
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) {
      try {
        await admin.query(`CREATE DATABASE ${db}${owner ? ` OWNER ${owner}` : ''}`);
        created = true;
      } catch (err) {
        // 42P04: created meanwhile by a concurrent run.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
    await admin.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${db} TO ${app}`);
  } catch (err) {
    throw wrapDriverError(err, 'provisionTenantDatabase (create database)');
  } finally {
    await admin.end().catch(() => undefined);
  }

  const inside = new pg.Client({ connectionString: withDatabase(options.adminConnectionString, database) });
  inside.on('error', () => undefined);
  try {
    await inside.connect();
    if (owner) await inside.query(`ALTER SCHEMA public OWNER TO ${owner}`);
    await inside.query('REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO PUBLIC');
    if (options.sideChannelGuards ?? superuser) await installSideChannelGuards(inside);
    // Everything below runs as the owner: it owns the SECURITY DEFINER functions and the tables.
    if (owner) await inside.query(`SET ROLE ${owner}`);
    await installTenantScope(inside, {
      appRole: options.appRole,
      bindingKey: options.bindingKey,
      setting: options.setting,
    });
    await inside.query('BEGIN');
    try {
      await options.setup(inside);
      await inside.query('COMMIT');
    } catch (err) {
      await inside.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw wrapDriverError(err, 'provisionTenantDatabase (set-up)');
  } finally {
    await inside.end().catch(() => undefined);
  }
  return { database, created };
}

/**
 * Drops a tenant database (after its data was moved away), ending its sessions. As a superuser
 * or the owner, directly (not through a transaction pooler). Idempotent.
 */
export async function dropTenantDatabase(options: { adminConnectionString: string; database: string }): Promise<void> {
  const db = quoteIdent(options.database, 'database');
  const admin = new pg.Client({ connectionString: options.adminConnectionString });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  } catch (err) {
    throw wrapDriverError(err, 'dropTenantDatabase');
  } finally {
    await admin.end().catch(() => undefined);
  }
}
