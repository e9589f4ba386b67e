import { DEFAULT_TENANT_ID_PATTERN, type Tenant, TenantScopeError } from '@tenantscope/core';
import { secretsError } from './errors.ts';

/**
 * Maps a (tenant, name) pair to the backend's secret identifier. Only called with a verified
 * tenant and a name that passed {@link assertSecretName}.
 */
export type SecretNaming = (tenant: Tenant, name: string) => string;

/**
 * The only names accepted: lowercase ASCII letters, digits, `_` and `-`, starting with a letter,
 * 1–64 characters. Everything else is refused, not normalised: a `/`, `\`, `.`, `%`, any
 * whitespace or control character, any non-ASCII character (full-width solidus, homoglyphs,
 * combining marks) and any uppercase letter. With the default naming a name is the last path
 * segment under the tenant's own prefix, so no accepted name can reach another tenant's path.
 */
export const SECRET_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

/** Throws SECRET_NAME_INVALID unless `name` matches {@link SECRET_NAME_PATTERN}. */
export function assertSecretName(name: unknown): asserts name is string {
  if (typeof name !== 'string') {
    throw secretsError(
      'SECRET_NAME_INVALID',
      `a secret name must be a string, got ${name === null ? 'null' : typeof name}`,
    );
  }
  if (!SECRET_NAME_PATTERN.test(name)) {
    // Never echo the raw input: it may be another tenant's path or a value pasted by mistake.
    throw secretsError(
      'SECRET_NAME_INVALID',
      'invalid secret name: use 1-64 lowercase ASCII letters, digits, "_" or "-", starting with a letter',
      { details: { length: name.length } },
    );
  }
}

/** Default naming: `tenants/<tenant>/<name>`. */
export const defaultNaming: SecretNaming = (tenant, name) => `tenants/${tenant.id}/${name}`;

/** The prefix every secret of `tenant` has under the default naming. */
export function defaultTenantPrefix(tenant: Tenant): string {
  return `tenants/${tenant.id}/`;
}

/** Characters AWS Secrets Manager accepts in a secret name; also what any naming must produce. */
const BACKEND_ID = /^[A-Za-z0-9/_+=.@-]{1,512}$/;

/** Checks the tenant id before it becomes part of a path (defence in depth; the verifier already did). */
export function assertPathSafeTenant(tenant: Tenant): void {
  if (!DEFAULT_TENANT_ID_PATTERN.test(tenant.id)) {
    throw new TenantScopeError('NOT_A_TENANT', 'tenant id is not usable in a secret path');
  }
}

/** Runs `naming` and checks its output is a plausible backend identifier without traversal. */
export function resolvePath(naming: SecretNaming, tenant: Tenant, name: string): string {
  assertPathSafeTenant(tenant);
  const path = naming(tenant, name);
  if (
    typeof path !== 'string' ||
    !BACKEND_ID.test(path) ||
    path.split('/').some((seg) => seg === '..' || seg === '.')
  ) {
    throw new TenantScopeError('INVALID_CONFIG', 'the secret naming function returned an invalid identifier');
  }
  return path;
}
