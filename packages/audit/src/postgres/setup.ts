import { type AuditEvent, TenantScopeError } from '@tenantscope/core';
import pg from 'pg';
import type { VerifyReport } from '../chain.ts';
import { DEFAULT_AUDIT_SCHEMA, ident, migrateAuditSchema, STREAM_LOCK_CLASS } from './schema.ts';
import { type AuditPoolerMode, auditPooler } from './session.ts';
import { PostgresAuditSink, type PostgresAuditSinkOptions } from './sink.ts';
import { PostgresAuditStore, type PurgeResult, purgePostgresAudit } from './store.ts';

export interface PostgresAuditLogOptions {
  /** A superuser (or CREATEROLE + CREATEDB) connection string. */
  adminUrl: string;
  /** Database for the audit tables; created if missing. Default `tenantscope_audit`. */
  database?: string;
  /** Schema. Default `tenantscope_audit`. */
  schema?: string;
  /** Role-name prefix: `<prefix>_owner`, `<prefix>_writer`, `<prefix>_auditor` (NOLOGIN). Default `tenantscope_audit`. */
  rolePrefix?: string;
  /** Tenants' scoped role to give the RLS read policy (see `AuditSchemaOptions.tenantReader`). */
  tenantReader?: { role: string; tenantIdSql?: string };
  /** Sink options (mode, batching, privacy). */
  sink?: Omit<PostgresAuditSinkOptions, 'pool' | 'schema' | 'ownsPool' | 'role'>;
  /**
   * What sits between this process and PostgreSQL: `'none'` (default, a direct connection) or a
   * pooler in `'session'` or `'transaction'` mode (PgBouncer, Supavisor, RDS Proxy, pgcat). Behind
   * a pooler the pools log in as the `adminUrl` user and every transaction runs
   * `SET LOCAL ROLE <role>; SET LOCAL synchronous_commit = on` first (a write batch costs three
   * round trips instead of one); directly, each session starts as its role. Declaring `'none'`
   * behind a pooler fails at set-up (INVALID_CONFIG), never silently as admin.
   */
  pooler?: AuditPoolerMode;
  /** Writer pool size. Default 4. */
  poolSize?: number;
}

/** Everything the example server needs: the sink, the auditor's store, and retention. */
export interface PostgresAuditLog {
  sink: PostgresAuditSink;
  store: PostgresAuditStore;
  /** Verify one tenant's stream, or every stream. */
  verify(tenant?: string | null): Promise<VerifyReport>;
  /** The last `limit` events of a tenant's stream. */
  events(tenant: string | null, limit?: number): Promise<AuditEvent[]>;
  /** Checkpoint every stream's head. */
  anchor(): Promise<unknown>;
  /** Retention for one tenant. */
  purge(tenant: string | null, olderThanDays?: number): Promise<PurgeResult>;
  close(): Promise<void>;
}

/**
 * Sets up the Postgres audit log from one admin URL: creates the database, three NOLOGIN roles
 * (owner, writer, auditor) and the schema, and returns pools that `SET ROLE` to each. Meant for
 * development, examples and tests; in production, run `migrateAuditSchema` once and give each
 * process a connection as its own role.
 */
export async function setupPostgresAudit(options: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
  const database = options.database ?? 'tenantscope_audit';
  ident(database, 'database');
  const prefix = options.rolePrefix ?? 'tenantscope_audit';
  const roles = { owner: `${prefix}_owner`, writer: `${prefix}_writer`, auditor: `${prefix}_auditor` };
  for (const r of Object.values(roles)) ident(r, 'role');
  const schema = options.schema ?? DEFAULT_AUDIT_SCHEMA;
  const pooler = auditPooler(options.pooler);

  const root = new pg.Client({ connectionString: options.adminUrl });
  await root.connect();
  try {
    // Several processes may set up at once (e.g. test files starting the example server):
    // serialise on a session advisory lock, released when this connection ends. Behind a pooler a
    // session lock would stay on a shared server connection: there CREATE DATABASE (which cannot
    // run in a transaction) tolerates a concurrent twin, and the rest runs under a transaction lock.
    if (pooler === 'none') await root.query('SELECT pg_advisory_lock($1, 0)', [STREAM_LOCK_CLASS - 2]);
    const exists = await root.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) {
      await ignoring(['42P04', '23505'], () => root.query(`CREATE DATABASE ${ident(database)}`));
    }
    if (pooler !== 'none') {
      await root.query('BEGIN');
      await root.query('SELECT pg_advisory_xact_lock($1, 0)', [STREAM_LOCK_CLASS - 2]);
    }
    for (const r of Object.values(roles)) {
      const has = await root.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [r]);
      if (has.rowCount === 0) await ignoring(['42710', '23505'], () => root.query(`CREATE ROLE ${ident(r)} NOLOGIN`));
    }
    await root.query(`GRANT CREATE, CONNECT ON DATABASE ${ident(database)} TO ${ident(roles.owner)}`);
    if (pooler !== 'none') await root.query('COMMIT');
  } catch (err) {
    if (pooler !== 'none') await root.query('ROLLBACK').catch(() => undefined);
    throw err instanceof TenantScopeError
      ? err
      : new TenantScopeError('INVALID_CONFIG', 'audit database setup failed', { cause: err });
  } finally {
    await root.end();
  }
  const url = new URL(options.adminUrl);
  url.pathname = `/${database}`;
  // Directly, each pool's sessions start as the role (startup option `role`); behind a pooler every
  // transaction starts with SET LOCAL ROLE (the `role` option below). No query runs as admin.
  const asRole = (role: string, max: number) => {
    // synchronous_commit=on: a commit the sink reports as durable has reached the WAL on disk,
    // whatever the server default is.
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max,
      ...(pooler === 'none' ? { options: `-c role=${role} -c synchronous_commit=on` } : {}),
    });
    // An idle connection dropped by the server (restart, shutdown after close) is not an audit
    // failure: the next checkout reconnects, and a write that fails still rejects.
    pool.on('error', () => undefined);
    return pool;
  };
  const owner = asRole(roles.owner, 2);
  const writer = asRole(roles.writer, options.poolSize ?? 4);
  const auditor = asRole(roles.auditor, 2);
  const role = (r: string) => (pooler === 'none' ? undefined : r);
  try {
    await migrateAuditSchema(
      owner,
      { schema, writer: roles.writer, auditor: roles.auditor, tenantReader: options.tenantReader },
      { role: role(roles.owner) },
    );
    if (pooler === 'none') await checkSessionsRunAsRoles(writer, roles.writer);
  } catch (err) {
    await Promise.allSettled([owner.end(), writer.end(), auditor.end()]);
    // e.g. PgBouncer refusing the startup options: "unsupported startup parameter: options".
    throw err instanceof TenantScopeError
      ? err
      : new TenantScopeError('INVALID_CONFIG', `audit pools could not start as their roles (pooler: '${pooler}')`, {
          cause: err,
        });
  }
  const sink = new PostgresAuditSink({ ...options.sink, pool: writer, schema, role: role(roles.writer) });
  const store = new PostgresAuditStore({ pool: auditor, schema, role: role(roles.auditor) });
  return {
    sink,
    store,
    verify: (tenant) => store.verify(tenant),
    events: (tenant, limit) => store.events(tenant, limit),
    anchor: () => store.anchor(),
    purge: (tenant, days) =>
      purgePostgresAudit({ pool: owner, schema, tenant, olderThanDays: days, role: role(roles.owner) }),
    async close() {
      await sink.close();
      await Promise.allSettled([owner.end(), writer.end(), auditor.end()]);
    },
  };
}

/**
 * Directly, a session starts as its role with durable commits. A pooler that drops the startup
 * `options` (PgBouncer's `ignore_startup_parameters = options`) would leave it the admin: refused.
 */
async function checkSessionsRunAsRoles(pool: pg.Pool, role: string): Promise<void> {
  const r = await pool.query<{ u: string; sc: string }>(
    "SELECT current_user AS u, current_setting('synchronous_commit') AS sc",
  );
  if (r.rows[0]?.u !== role || r.rows[0]?.sc !== 'on') {
    throw new TenantScopeError(
      'INVALID_CONFIG',
      "audit pool sessions did not start as their role (a pooler dropped the startup options?): set pooler: 'transaction' or 'session'",
    );
  }
}

async function ignoring(codes: string[], fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!codes.includes((err as { code?: string }).code ?? '')) {
      throw new TenantScopeError('INVALID_CONFIG', 'audit database setup failed', { cause: err });
    }
  }
}
