import { errorFactory } from '@tenantscope/core';

/**
 * The codes `@tenantscope/secrets` throws, with their HTTP status. Callers switch on `code`.
 * Messages name the tenant-relative secret name only, never a value and never another tenant's path.
 */
export const SECRETS_ERROR_CODES = {
  /** The name (or version selector) is not a valid secret name. Nothing was fetched. */
  SECRET_NAME_INVALID: 400,
  /** A value given to `put` is not a usable secret (not a string, or too short to redact). */
  SECRET_VALUE_INVALID: 400,
  /** The tool did not declare this name in its `secrets` list. Nothing was fetched. */
  SECRET_NOT_DECLARED: 403,
  /** The backend has no such secret (or version) for this tenant. */
  SECRET_NOT_FOUND: 404,
  /** The backend refused access to the secret. */
  SECRET_ACCESS_DENIED: 403,
  /** The secret exists but cannot be read now (e.g. scheduled for deletion). */
  SECRET_UNAVAILABLE: 409,
  /** The backend failed (network, decryption, throttling, an unexpected answer). */
  SECRET_BACKEND_FAILED: 502,
  /** The secrets were read outside a call, or after the call ended. */
  SECRET_CONTEXT_CLOSED: 500,
  /** `tenantData(tenant).delete()`: secrets remained after the delete (recount not 0). */
  SECRET_DSAR_INCOMPLETE: 500,
} as const;

export type SecretsErrorCode = keyof typeof SECRETS_ERROR_CODES;

/** Builds a TenantScopeError with one of this package's codes and its status. */
export const secretsError = errorFactory(SECRETS_ERROR_CODES);

/** @deprecated use `SECRETS_ERROR_CODES` (the same table). */
export const SECRET_ERROR_CODES = SECRETS_ERROR_CODES;
/** @deprecated use `SecretsErrorCode`. */
export type SecretErrorCode = SecretsErrorCode;
/** @deprecated use `secretsError` (the same function). */
export const secretError = secretsError;
