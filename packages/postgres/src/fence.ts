/**
 * Move fences: a database (the shared one, or a tenant's own) that a tenant is leaving refuses
 * that tenant's writes, on the server, however late its caller resolved the placement.
 *
 * - `tenantscope.fence` (installed by `installTenantScope`, no grants) lists the tenants fenced at
 *   this database.
 * - `tenantscope.bind(…)` (per transaction) takes `pg_advisory_xact_lock_shared` on the tenant's
 *   key (without waiting) in every read-write transaction and refuses, with SQLSTATE `TSF01`,
 *   a tenant that is fenced here or whose fence is being set. Read-only transactions (they cannot
 *   write) pass. `bind_session(…)` (hot lanes) holds the shared key for the session and is
 *   refused the same way; a fence NOTIFYs `tenantscope_fence` so pools close the tenant's hot lanes.
 * - `tenantscope.bind_exclusive(…)` (owner only) is the mover's: it passes a fence.
 * - `fenceTenant` inserts the row (and notifies), then takes the tenant's key exclusively, which
 *   waits for every transaction and hot lane of the tenant admitted before the row was there.
 */
import { assertTenant, type Tenant } from '@tenantscope/core';
import type pg from 'pg';
import { assertBindableTenantId } from './binding.ts';
import { pgError, wrapDriverError } from './errors.ts';
import type { ScopedPool, ScopedTransaction } from './scoped.ts';
import type { Queryable } from './sql.ts';

export { FENCE_SQLSTATE } from './errors.ts';
/** NOTIFY channel a fence signals on (payload: the tenant id); hot lanes of that tenant close. */
export const FENCE_CHANNEL = 'tenantscope_fence';
/** Class id of the fence's advisory lock keys (`'tsfc'`); the object id is `hashtext(tenant)`. */
export const FENCE_LOCK_CLASS = 0x74736663;
/** SQL of the tenant's fence key arguments, for a tenant id given as `expr`. @internal */
export const fenceKeySql = (expr: string) => `${FENCE_LOCK_CLASS}, pg_catalog.hashtext(${expr})`;

const DEFAULT_LOCK_TIMEOUT_MS = 15_000;

export interface FenceOptions {
  /**
   * How long (ms) `fenceTenant` waits for the tenant's transactions and hot lanes already admitted
   * at this database to end. Past it: PG_FENCE_TIMEOUT (the fence row stays, so new writes stay
   * refused; run it again). Default 15000.
   */
  lockTimeoutMs?: number;
}

function lockTimeout(ms: number | undefined): number {
  const v = ms ?? DEFAULT_LOCK_TIMEOUT_MS;
  if (!Number.isInteger(v) || v < 1 || v > 3_600_000) {
    throw pgError('PG_IDENTIFIER_INVALID', 'lockTimeoutMs must be an integer from 1 to 3600000');
  }
  return v;
}

interface Conn {
  query: Queryable['query'];
  release(): void;
}

async function connect(admin: Queryable): Promise<Conn> {
  const pool = admin as Queryable & { connect?: () => Promise<pg.PoolClient>; totalCount?: number };
  if (typeof pool.connect === 'function' && typeof pool.totalCount === 'number') {
    const c = await pool.connect();
    return { query: (t, v) => c.query(t, v), release: () => c.release() };
  }
  return { query: (t, v) => admin.query(t, v), release: () => {} };
}

/** Fails closed when this database's tenantscope predates fences (bind() would not check them). */
async function assertFenceAware(c: Conn): Promise<void> {
  const r = await c.query<{ ok: boolean }>(
    `SELECT to_regclass('tenantscope.fence') IS NOT NULL
        AND coalesce((SELECT p.prosrc LIKE '%tenantscope.fence%' FROM pg_catalog.pg_proc p
                      WHERE p.oid = to_regprocedure('tenantscope.bind(text)')), false) AS ok`,
  );
  if (!r.rows[0]?.ok) {
    throw pgError(
      'PG_FENCE_UNSUPPORTED',
      'tenantscope at this database predates move fences: run installTenantScope there (idempotent) to upgrade',
    );
  }
}

/**
 * Fences `tenantId` at the database `admin` connects to (a role that owns schema `tenantscope`):
 * from the moment the row commits, the tenant's read-write transactions and hot lanes there are
 * refused (SQLSTATE TSF01, PLACEMENT_PAUSED in the client); then it waits (at most
 * `lockTimeoutMs`) for the ones admitted before to end. When it returns, no write of the tenant
 * can land here. Idempotent.
 */
export async function fenceTenant(admin: Queryable, tenantId: string, options: FenceOptions = {}): Promise<void> {
  assertBindableTenantId(tenantId);
  const timeout = lockTimeout(options.lockTimeoutMs);
  const c = await connect(admin);
  try {
    await assertFenceAware(c);
    // 1. The row (new binds see it) and the signal to hot lanes, committed together.
    await c.query(
      `WITH f AS (INSERT INTO tenantscope.fence (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING)
       SELECT pg_catalog.pg_notify('${FENCE_CHANNEL}', $1)`,
      [tenantId],
    );
    // 2. The barrier: the exclusive key waits for every holder of the shared key (admitted before 1).
    await c.query('BEGIN');
    try {
      await c.query(`SET LOCAL lock_timeout = ${timeout}`);
      await c.query(`SELECT pg_catalog.pg_advisory_xact_lock(${fenceKeySql('$1')})`, [tenantId]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      if ((err as { code?: string }).code === '55P03') {
        throw pgError(
          'PG_FENCE_TIMEOUT',
          `the fence is set, but transactions of the tenant admitted before it were still running after ${timeout} ms; run it again`,
          { cause: err },
        );
      }
      throw err;
    }
  } catch (err) {
    throw wrapDriverError(err, 'fence');
  } finally {
    c.release();
  }
}

/** Lifts the fence of `tenantId` at the database `admin` connects to. Idempotent (no table: nothing to lift). */
export async function unfenceTenant(admin: Queryable, tenantId: string): Promise<void> {
  assertBindableTenantId(tenantId);
  try {
    await admin.query(
      `DO $ts$ BEGIN
         IF to_regclass('tenantscope.fence') IS NOT NULL THEN
           DELETE FROM tenantscope.fence WHERE tenant_id = ${quoteLiteral(tenantId)};
         END IF;
       END $ts$`,
    );
  } catch (err) {
    throw wrapDriverError(err, 'unfence');
  }
}

/** Whether `tenantId` is fenced at the database `admin` connects to. */
export async function isFenced(admin: Queryable, tenantId: string): Promise<boolean> {
  assertBindableTenantId(tenantId);
  try {
    const r = await admin.query<{ f: boolean }>(
      `SELECT to_regclass('tenantscope.fence') IS NOT NULL
          AND EXISTS (SELECT 1 FROM tenantscope.fence WHERE tenant_id = $1) AS f`,
      [tenantId],
    );
    return r.rows[0]?.f === true;
  } catch (err) {
    throw wrapDriverError(err, 'isFenced');
  }
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * For the tools that move a tenant's data (not for tool code): one transaction bound to `tenant`
 * on `pool`'s database through `tenantscope.bind_exclusive`, which only the owner of schema
 * `tenantscope` may call (so `pool` must connect as it). It takes the tenant's fence key
 * exclusively (waiting at most `lockTimeoutMs` for the tenant's other write transactions there),
 * so it binds and writes even where the tenant is fenced, and no other write of the tenant runs
 * there meanwhile.
 */
export async function exclusiveTransaction<T>(
  pool: ScopedPool,
  tenant: Tenant,
  fn: (tx: ScopedTransaction) => Promise<T>,
  options: FenceOptions = {},
): Promise<T> {
  assertTenant(tenant, 'exclusiveTransaction');
  const timeout = lockTimeout(options.lockTimeoutMs);
  const token = pool.bindToken(tenant);
  let client: pg.PoolClient;
  try {
    client = await pool.unscopedPool.connect();
  } catch (err) {
    throw wrapDriverError(err, 'connect');
  }
  let ok = false;
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL lock_timeout = ${timeout}`);
    await client.query('SELECT tenantscope.bind_exclusive($1)', [token]);
    const tx: ScopedTransaction = Object.freeze({
      tenantId: tenant.id,
      query: <R extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
        client.query<R>(text, params).catch((err: unknown) => {
          throw wrapDriverError(err, 'query');
        }),
    });
    const out = await fn(tx);
    await client.query('COMMIT');
    ok = true;
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw wrapDriverError(err, 'exclusive transaction');
  } finally {
    // Not pooled again after a failure (a half-finished transaction or a broken connection).
    client.release(ok ? undefined : new Error('tenantscope: connection discarded'));
  }
}
