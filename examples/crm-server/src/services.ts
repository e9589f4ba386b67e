import { createHmac, randomBytes } from 'node:crypto';
import { type ResolvedPostgres, resolvePostgres } from '@tenantscope/testkit';

let pg: Promise<ResolvedPostgres> | undefined;
let users = 0;

/**
 * The example's PostgreSQL, shared by every plugin that needs one: `DATABASE_URL` when set
 * (a superuser URL; plugins create their own least-privileged roles), else testcontainers, else
 * an embedded PostgreSQL started once. Each caller gets a `release` that stops it after the last.
 */
export async function sharedPostgres(): Promise<{ url: string; describe: string; release(): Promise<void> }> {
  pg ??= resolvePostgres();
  const resolved = await pg;
  users++;
  let released = false;
  return {
    url: resolved.url,
    describe: resolved.describe,
    async release() {
      if (released) return;
      released = true;
      users--;
      if (users === 0) {
        pg = undefined;
        await resolved.stop();
      }
    },
  };
}

/**
 * `TENANTSCOPE_PG_POOLER`: what sits between the example and PostgreSQL at `DATABASE_URL`:
 * `none` (default), `session` or `transaction` (e.g. PgBouncer `pool_mode = transaction`).
 */
export function poolerFromEnv(env: NodeJS.ProcessEnv = process.env): 'none' | 'session' | 'transaction' {
  const v = env.TENANTSCOPE_PG_POOLER || 'none';
  if (v !== 'none' && v !== 'session' && v !== 'transaction') {
    throw new Error("TENANTSCOPE_PG_POOLER must be 'none', 'session' or 'transaction'");
  }
  return v;
}

/**
 * `url` with the host and port of `DATABASE_DIRECT_URL` (PostgreSQL itself, not the pooler), for
 * what needs a session of its own: LISTEN and the superuser's set-up under a session advisory lock.
 * Unchanged when that is not set.
 */
export function directPostgresUrl(url: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!env.DATABASE_DIRECT_URL) return url;
  const u = new URL(url);
  const d = new URL(env.DATABASE_DIRECT_URL);
  u.hostname = d.hostname;
  u.port = d.port;
  return u.toString();
}

/** Names of the CRM database and its roles. */
export interface CrmDatabaseNames {
  dbName: string;
  ownerRole: string;
  appRole: string;
  password: string;
  /**
   * True with `DATABASE_URL`: fixed names, so every replica given the same URL shares one database
   * (created by the first, kept on stop). False in dev mode: a private random database, dropped on stop.
   */
  shared: boolean;
}

const NAME = /^[a-z_][a-z0-9_]{0,40}$/;

/**
 * The CRM database's names: fixed (`TENANTSCOPE_CRM_DATABASE`, default `tenantscope_crm`) with
 * `DATABASE_URL`; random without it, or with `TENANTSCOPE_CRM_PRIVATE_DB=1` (tests that need fresh data).
 */
export function crmDatabaseNames(superuserUrl: string, env: NodeJS.ProcessEnv = process.env): CrmDatabaseNames {
  if (!env.DATABASE_URL || env.TENANTSCOPE_CRM_PRIVATE_DB === '1') {
    const suffix = randomBytes(4).toString('hex');
    return {
      dbName: `crm_${suffix}`,
      ownerRole: `crm_owner_${suffix}`,
      appRole: `crm_app_${suffix}`,
      password: randomBytes(16).toString('hex'),
      shared: false,
    };
  }
  const base = env.TENANTSCOPE_CRM_DATABASE || 'tenantscope_crm';
  if (!NAME.test(base))
    throw new Error('TENANTSCOPE_CRM_DATABASE must be a lowercase identifier of at most 41 characters');
  // Every replica derives the same role password from the superuser URL it was given.
  const password = createHmac('sha256', superuserUrl)
    .update('tenantscope crm example roles')
    .digest('hex')
    .slice(0, 32);
  return { dbName: base, ownerRole: `${base}_owner`, appRole: `${base}_app`, password, shared: true };
}

/**
 * Creates the roles and the database when missing (and resets a role's password when `loginWorks`
 * says it no longer logs in). Shared mode
 * takes a cluster-wide advisory lock on `su` (the caller releases it when set-up is done), so replicas starting together
 * set up the database one at a time and never see it half made.
 */
export async function provisionCrmDatabase(
  su: { query(sql: string, params?: unknown[]): Promise<{ rowCount: number | null }> },
  n: CrmDatabaseNames,
  loginWorks: (role: string) => Promise<boolean> = async () => false,
): Promise<void> {
  if (n.shared) await su.query(`SELECT pg_advisory_lock(hashtext('tenantscope.crm-example'))`);
  for (const role of [n.ownerRole, n.appRole]) {
    const exists = (await su.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount;
    // A password that still works is kept: setting it again makes a new SCRAM salt, and PgBouncer's
    // cached SCRAM keys for the role then fail its logins to PostgreSQL.
    if (exists && (await loginWorks(role))) continue;
    await su.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${role} LOGIN PASSWORD '${n.password}'`);
  }
  if (!(await su.query('SELECT 1 FROM pg_database WHERE datname = $1', [n.dbName])).rowCount) {
    await su.query(`CREATE DATABASE ${n.dbName} OWNER ${n.ownerRole}`);
  }
  // The app role may connect, nothing more: no TEMP (temp tables outlive transactions on pooled connections).
  await su.query(
    `REVOKE ALL ON DATABASE ${n.dbName} FROM PUBLIC; GRANT CONNECT ON DATABASE ${n.dbName} TO ${n.appRole}`,
  );
}
