/**
 * One error base with stable string codes. Callers switch on `code`, never on the message or the
 * class. Messages never carry another tenant's data; a driver's error is kept as `cause`.
 */

/** Every code tenantscope throws, with the HTTP status it maps to. */
export const ERROR_CODES = {
  // authentication (401 unless noted)
  AUTH_MISSING: 401,
  AUTH_MALFORMED: 401,
  AUTH_TOO_LARGE: 401,
  AUTH_ALGORITHM: 401,
  AUTH_SIGNATURE: 401,
  AUTH_KEY_UNKNOWN: 401,
  AUTH_KEYS_UNAVAILABLE: 401,
  AUTH_EXPIRED: 401,
  AUTH_NOT_YET_VALID: 401,
  AUTH_LIFETIME: 401,
  AUTH_AUDIENCE: 401,
  AUTH_ISSUER: 401,
  AUTH_CLAIM_MISSING: 401,
  AUTH_CLAIM_INVALID: 401,
  AUTH_TENANT_INVALID: 401,
  AUTH_REVOKED: 401,
  AUTH_DUPLICATE_CLAIM: 401,
  // authorisation
  TENANT_HALTED: 403,
  TENANT_UNKNOWN: 403,
  INSUFFICIENT_SCOPE: 403,
  SESSION_MISMATCH: 403,
  SESSION_NOT_FOUND: 404,
  SESSION_REQUIRED: 400,
  SESSION_LIMIT: 503,
  /** The server is starting or shutting down: retry (another replica). */
  UNAVAILABLE: 503,
  TOOL_NOT_FOUND: 404,
  TENANT_OVERRIDE: 400,
  BATCH_REFUSED: 400,
  RATE_LIMITED: 429,
  // runtime
  NOT_A_TENANT: 500,
  NO_TENANT_CONTEXT: 500,
  INVALID_ARGUMENT: 400,
  INVALID_CONFIG: 500,
  AUDIT_WRITE_FAILED: 503,
  REQUEST_TOO_LARGE: 413,
  RESULT_TOO_LARGE: 413,
  RESULT_INVALID: 500,
  BAD_REQUEST: 400,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface TenantScopeErrorOptions {
  /** The underlying error (driver, jose, …). Kept for operators; never sent to clients. */
  cause?: unknown;
  /** Extra machine-readable detail. Must not contain another tenant's data. */
  details?: Record<string, unknown>;
  /** HTTP status for a code not in ERROR_CODES (adapters' own codes). Default 500, or the table's. */
  status?: number;
}

/** The base of every error tenantscope throws on purpose. */
export class TenantScopeError extends Error {
  override readonly name: string = 'TenantScopeError';
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode | (string & {}), message: string, options: TenantScopeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = (ERROR_CODES as Record<string, number>)[code] ?? options.status ?? 500;
    this.details = options.details;
  }

  /** A plain object safe to send to a client: code and message only. */
  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True for any tenantscope error, even one from another copy of this package. */
export function isTenantScopeError(value: unknown): value is TenantScopeError {
  return (
    value instanceof TenantScopeError ||
    (value instanceof Error &&
      value.name === 'TenantScopeError' &&
      typeof (value as { code?: unknown }).code === 'string')
  );
}

/**
 * The JSON-RPC error code of a protocol-level refusal (the HTTP answer to a request that never
 * reached a tool): -32010 unauthenticated (401), -32011 forbidden (403), -32029 rate limited,
 * -32602 bad request or not found, -32603 anything else. `error.data.code` carries the stable code.
 */
export function jsonRpcCodeFor(err: TenantScopeError): number {
  if (err.status === 400) return -32602; // invalid params
  if (err.status === 404) return -32602; // unknown tool is invalid params in the MCP SDK
  // Not -32001: the SDK uses it for RequestTimeout, so a client would read a refusal as a timeout.
  if (err.status === 401) return -32010;
  if (err.status === 403) return -32011;
  if (err.status === 429) return -32029;
  return -32603; // internal
}

/**
 * Builds the error constructor for an adapter's own code table (`{ CODE: httpStatus }`), so every
 * adapter throws the same `TenantScopeError` with the status its table gives.
 *
 * ```ts
 * const S3_CODES = { S3_KEY_INVALID: 400 } as const;
 * export const s3Error = errorFactory(S3_CODES);
 * throw s3Error('S3_KEY_INVALID', 'invalid key');
 * ```
 */
export function errorFactory<T extends Record<string, number>>(codes: T) {
  return (
    code: keyof T & string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ): TenantScopeError => new TenantScopeError(code, message, { ...options, status: codes[code] });
}
