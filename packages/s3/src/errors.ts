import { errorFactory, isTenantScopeError, type TenantScopeError } from '@tenantscope/core';

/**
 * The codes this package throws, with their HTTP status. Callers switch on `err.code`.
 * - `S3_KEY_INVALID` (400): a key broke the key rule (`details.reason` says which part).
 * - `S3_BODY_INVALID` (400): a body that is not a string, bytes or a stream.
 * - `S3_TOKEN_INVALID` (400): a continuation token not sealed for this tenant and listing, or expired.
 * - `S3_PRESIGN_EXPIRY` (400): a presign expiry outside 1 s … the configured cap.
 * - `S3_NOT_FOUND` (404): no such object (inside the tenant).
 * - `S3_REQUEST_FAILED` (502): the server refused or failed; the driver error is the `cause`.
 * - `S3_SCOPE_VIOLATION` (500): the server returned a key outside the tenant prefix (never expected).
 * - `S3_DSAR_MISMATCH` (500): a DSAR recount did not match what was exported or deleted.
 * - `S3_CREDENTIALS_FAILED` (502): tenant-scoped credentials could not be obtained (STS refused or
 *   failed, or the tenant has no user); nothing is sent with other credentials.
 * - `S3_PLACEMENT_MOVED` (503, retryable): the place a write resolved refused it (a `tenant move`'s
 *   fence) and the tenant now lives elsewhere, but the body was a stream that cannot be sent twice:
 *   nothing was stored; send it again.
 */
export const S3_ERROR_CODES = {
  S3_KEY_INVALID: 400,
  S3_BODY_INVALID: 400,
  S3_TOKEN_INVALID: 400,
  S3_PRESIGN_EXPIRY: 400,
  S3_NOT_FOUND: 404,
  S3_REQUEST_FAILED: 502,
  S3_SCOPE_VIOLATION: 500,
  S3_DSAR_MISMATCH: 500,
  S3_CREDENTIALS_FAILED: 502,
  S3_PLACEMENT_MOVED: 503,
} as const;

export type S3ErrorCode = keyof typeof S3_ERROR_CODES;

/** @deprecated use `S3_ERROR_CODES` (the same table). */
export const S3_ERROR_STATUS = S3_ERROR_CODES;

/** Builds a TenantScopeError with one of this package's codes and its status. */
export const s3Error = errorFactory(S3_ERROR_CODES);

interface SdkErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Turns a driver error into a typed one. The message names the operation and the S3 error code
 * only; keys, buckets and the server's own message (which can name them) stay in `cause`.
 */
export function wrapSdkError(err: unknown, operation: string): TenantScopeError {
  if (isTenantScopeError(err)) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket')) {
    return s3Error('S3_NOT_FOUND', `${operation}: no such object`, { cause: err, details: { status: 404 } });
  }
  const code = /^[A-Za-z]{1,64}$/.test(name) ? name : 'Error';
  return s3Error('S3_REQUEST_FAILED', `${operation} failed: ${code}${status ? ` (HTTP ${status})` : ''}`, {
    cause: err,
    details: { s3Code: code, status },
  });
}
