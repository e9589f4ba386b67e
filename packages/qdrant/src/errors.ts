import { errorFactory, isTenantScopeError, TenantScopeError } from '@tenantscope/core';

/**
 * The codes @tenantscope/qdrant throws, with their HTTP status. Callers switch on `code`.
 * Messages name only the caller's own input, never another tenant's data.
 */
export const QDRANT_ERROR_CODES = {
  /** A filter that is not a Qdrant Filter object (must/should/must_not/min_should). */
  QDRANT_FILTER_INVALID: 400,
  /** A write that would set, change or delete the tenant field. */
  QDRANT_TENANT_FIELD: 400,
  /** A point, id, vector or payload that is malformed. */
  QDRANT_POINT_INVALID: 400,
  /** A query shape this client cannot scope (unknown query variant or vector input). */
  QDRANT_QUERY_UNSUPPORTED: 400,
  /** `lookup_from` a collection not configured as tenant-scoped, or `with_lookup` (never scoped). */
  QDRANT_LOOKUP_REFUSED: 400,
  /** A caller-supplied `shard_key`: routing belongs to the placement, not the caller. */
  QDRANT_SHARD_KEY_REFUSED: 400,
  /**
   * A caller-chosen `params.idf` (sparse IDF corpus), or a call that would score an IDF vector
   * where the scope cannot confine the statistics to the tenant (search matrix).
   */
  QDRANT_IDF_REFUSED: 400,
  /** Example ids or points to update that are not this tenant's (or do not exist). */
  QDRANT_POINT_NOT_FOUND: 404,
  /** Upsert ids that another tenant already uses; those points were left untouched. */
  QDRANT_POINT_ID_CONFLICT: 409,
  /**
   * The server is too old for a guarantee this client needs: `update_filter` (writes) arrived in
   * Qdrant 1.15.4, `update_mode` in 1.17.0, the sparse IDF corpus (`params.idf`) in 1.19.0.
   */
  QDRANT_SERVER_UNSUPPORTED: 500,
  /** The tenant field already has an index of another kind. */
  QDRANT_INDEX_CONFLICT: 500,
  /** A placement kind this version does not implement yet. */
  QDRANT_PLACEMENT_UNSUPPORTED: 500,
  /** A DSAR delete left points behind (recount was not 0). */
  QDRANT_DSAR_INCOMPLETE: 500,
  /** Qdrant answered with an error (the driver error is the cause). */
  QDRANT_REQUEST_FAILED: 502,
} as const;

export type QdrantErrorCode = keyof typeof QDRANT_ERROR_CODES;

/** Builds a TenantScopeError with one of this package's codes and its status. */
export const qdrantError = errorFactory(QDRANT_ERROR_CODES);

/** Wraps a driver error; tenantscope errors pass through unchanged. */
export function wrapDriverError(err: unknown, operation: string): TenantScopeError {
  if (isTenantScopeError(err)) return err;
  const status = upstreamStatus(err);
  return new TenantScopeError(
    'QDRANT_REQUEST_FAILED',
    `Qdrant ${operation} failed${status ? ` (HTTP ${status})` : ''}`,
    {
      cause: err,
      status: status === 400 || status === 422 ? 400 : 502,
      details: status ? { upstreamStatus: status } : undefined,
    },
  );
}

function upstreamStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && typeof (err as { status?: unknown }).status === 'number') {
    return (err as { status: number }).status;
  }
  const m = /Unexpected Response: (\d{3})/.exec(String((err as Error | undefined)?.message ?? ''));
  return m ? Number(m[1]) : undefined;
}
