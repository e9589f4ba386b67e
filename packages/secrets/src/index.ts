/**
 * The provider-free entry: the injector, naming and errors. Providers are subpaths with optional
 * peers: `@tenantscope/secrets/aws` (`@aws-sdk/client-secrets-manager`) and
 * `@tenantscope/secrets/postgres` (`pg` and `@tenantscope/postgres`).
 */
export {
  SECRET_ERROR_CODES,
  SECRETS_ERROR_CODES,
  type SecretErrorCode,
  type SecretsErrorCode,
  secretError,
  secretsError,
} from './errors.ts';
export {
  DEFAULT_MAX_ENTRIES,
  DEFAULT_TTL_MS,
  type ForTenantOptions,
  type GetSecretOptions,
  MAX_TTL_MS,
  MIN_SECRET_LENGTH,
  ScopedSecrets,
  type ScopedSecretsOptions,
  type SecretNameRecord,
  SecretsInjector,
  type SecretsInjectorOptions,
  type SecretsStats,
  scopedSecrets,
  secretsInjector,
  type TenantSecrets,
} from './injector.ts';
export {
  assertSecretName,
  defaultNaming,
  defaultTenantPrefix,
  SECRET_NAME_PATTERN,
  type SecretNaming,
} from './naming.ts';
export type { SecretsProvider, SecretValue, VersionSelector } from './provider.ts';
