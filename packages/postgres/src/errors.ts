import { errorFactory, TenantScopeError } from '@tenantscope/core';
import { placementError } from './registry.ts';

/** SQLSTATE `tenantscope.bind` / `bind_session` raise for a fenced tenant (see fence.ts). Mapped to PLACEMENT_PAUSED (retryable). */
export const FENCE_SQLSTATE = 'TSF01';

/**
 * Error codes this package throws, with their HTTP status. Callers switch on `code`.
 * Driver errors are kept as `cause`; messages never carry row data.
 */
export const PG_ERROR_CODES = {
  /** The SQL failed (syntax, constraint, permission, RLS WITH CHECK). The transaction was rolled back. */
  PG_QUERY_FAILED: 400,
  /** The database could not be reached or the connection broke. */
  PG_UNAVAILABLE: 503,
  /** `doctor()` found problems; `details.problems` lists every one. */
  PG_DOCTOR_FAILED: 500,
  /** The tenant binding was refused by the database (wrong key, clock skew, not installed). */
  PG_BINDING_REFUSED: 500,
  /** An identifier (table, column, role) is not a plain SQL identifier. */
  PG_IDENTIFIER_INVALID: 400,
  /** The tenant's placement is not supported by this pool. */
  PG_PLACEMENT_UNSUPPORTED: 500,
  /** The placement resolver returned something that is not a `PgPlacement` (nothing was run). */
  PG_PLACEMENT_INVALID: 500,
  /** The placement resolver threw or rejected (e.g. the registry is unreachable); nothing was run. Retryable. */
  PG_PLACEMENT_FAILED: 503,
  /** A dedicated database refused: its role may bypass RLS, or tenantscope is not installed there. */
  PG_PLACEMENT_REFUSED: 500,
  /** The declared `pooler` mode does not match what is in front of PostgreSQL (a transaction pooler found behind 'none'/'session'). */
  PG_POOLER_MISMATCH: 500,
  /** `queryUntrusted`: the result passed the byte limit (`maxBytes`); reading stopped there and nothing was returned. */
  PG_RESULT_TOO_LARGE: 413,
  /** `queryUntrusted`: the statement is not one it runs (SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE only). */
  PG_STATEMENT_REFUSED: 400,
  /** `tenantData(tenant).delete()`: rows remained after the delete (recount not 0). */
  PG_DSAR_INCOMPLETE: 500,
  /** `installSideChannelGuards` runs as a superuser only (catalog objects belong to the bootstrap superuser). */
  PG_SUPERUSER_REQUIRED: 500,
  /** `fenceTenant`: the tenant's transactions admitted before the fence outlived `lockTimeoutMs` (the fence row stays; run it again). */
  PG_FENCE_TIMEOUT: 503,
  /** `fenceTenant`: tenantscope at that database predates move fences; run `installTenantScope` there to upgrade. */
  PG_FENCE_UNSUPPORTED: 500,
} as const;

export type PgErrorCode = keyof typeof PG_ERROR_CODES;

/** Builds a TenantScopeError with one of this package's codes and its status: `pgError(code, message, { cause, details })`. */
export const pgError = errorFactory(PG_ERROR_CODES);

/** SQLSTATE classes that mean the connection, not the statement, failed. */
function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string') {
    if (/^(08|57P|53)/.test(code)) return true;
    if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH)$/.test(code)) return true;
  }
  const msg = (err as Error)?.message ?? '';
  return /Connection terminated|not queryable|Client was closed/.test(msg);
}

/**
 * Wraps a driver error. The message names the SQLSTATE only: PostgreSQL's own message can quote
 * values from the statement (e.g. a duplicate key), so it stays in `cause`.
 */
export function wrapDriverError(err: unknown, what: string): TenantScopeError {
  if (err instanceof TenantScopeError) return err;
  const sqlstate = (err as { code?: unknown })?.code;
  if (sqlstate === '42501' && /tenantscope: invalid tenant binding/.test((err as Error)?.message ?? '')) {
    return pgError('PG_BINDING_REFUSED', `${what}: the database refused the tenant binding`, { cause: err });
  }
  if (sqlstate === FENCE_SQLSTATE) {
    // The tenant is being moved (or has moved) away from this database: retryable, and a fresh
    // placement leads to the new one. Nothing ran: the bind is the first statement.
    return placementError('PLACEMENT_PAUSED', `${what}: this tenant is being moved; retry shortly`, {
      cause: err,
      details: { retryAfterMs: 200, fenced: true },
    });
  }
  if (isConnectionFailure(err)) {
    return pgError('PG_UNAVAILABLE', `${what}: database connection failed`, { cause: err, details: { sqlstate } });
  }
  return pgError('PG_QUERY_FAILED', `${what} failed${typeof sqlstate === 'string' ? ` (SQLSTATE ${sqlstate})` : ''}`, {
    cause: err,
    details: typeof sqlstate === 'string' ? { sqlstate } : undefined,
  });
}
