/**
 * The provider-free entry: the injector, naming and errors. Providers are subpaths with optional
 * peers: `@tenantscope/secrets/aws` (`@aws-sdk/client-secrets-manager`) and
 * `@tenantscope/secrets/postgres` (`pg` and `@tenantscope/postgres`).
 */
export { SECRET_ERROR_CODES, type SecretErrorCode, secretError } from './errors.ts';
export {
  DEFAULT_MAX_ENTRIES,
  DEFAULT_TTL_MS,
  type GetSecretOptions,
  MAX_TTL_MS,
  MIN_SECRET_LENGTH,
  type ScopedSecrets,
  type SecretNameRecord,
  SecretsInjector,
  type SecretsInjectorOptions,
  type SecretsStats,
  secretsInjector,
} from './injector.ts';
export {
  assertSecretName,
  defaultNaming,
  defaultTenantPrefix,
  SECRET_NAME_PATTERN,
  type SecretNaming,
} from './naming.ts';
export type { SecretsProvider, SecretValue, VersionSelector } from './provider.ts';
