/** The node-postgres module this package is built against, for admin set-up code that has no direct `pg` dependency. */
export { default as pg } from 'pg';
export {
  apiKeyStoreSql,
  PostgresApiKeyAttemptLimiter,
  PostgresApiKeyStore,
  type PostgresApiKeyStoreOptions,
} from './api-keys.ts';
export { DEFAULT_TENANT_SETTING, generateBindingKey } from './binding.ts';
export {
  DOCTOR_PROBLEM_CODES,
  type DoctorOptions,
  type DoctorProblem,
  type DoctorProblemCode,
  type DoctorReport,
  runDoctor,
  TENANT_DB_CODES,
  type TenantDatabaseReport,
  type TenantDatabasesOptions,
} from './doctor.ts';
export { type ExportedRow, PgTenantData, type TenantData, type TenantDataOptions, tenantData } from './dsar.ts';
export { PG_ERROR_CODES, type PgErrorCode, pgError } from './errors.ts';
export {
  exclusiveTransaction,
  FENCE_CHANNEL,
  FENCE_SQLSTATE,
  type FenceOptions,
  fenceTenant,
  isFenced,
  unfenceTenant,
} from './fence.ts';
export type { HotOptions } from './hot.ts';
export {
  type PgPlacement,
  /** @deprecated use PgPlacement */
  type PgPlacement as Placement,
  type PgPlacementResolver,
  /** @deprecated use PgPlacementResolver (core's PlacementResolver<PgPlacement>) */
  type PgPlacementResolver as PlacementResolver,
  sharedPlacement,
} from './placement.ts';
export type { PoolerMode } from './pooler.ts';
export {
  dropTenantDatabase,
  type ProvisionResult,
  type ProvisionTenantDatabaseOptions,
  provisionTenantDatabase,
  tenantDatabaseName,
} from './provision.ts';
export {
  checkTierTarget,
  databaseUrl,
  type MoveState,
  PLACEMENT_ERROR_CODES,
  PLACEMENT_STORES,
  type PlacementEntry,
  type PlacementErrorCode,
  PlacementRegistry,
  type PlacementRegistryOptions,
  type PlacementStore,
  placementError,
  placementRegistry,
  type RegistryResolver,
  type TierTarget,
} from './registry.ts';
export {
  PostgresCallLimiter,
  PostgresRevocationStore,
  type ReplicaStateOptions,
  replicaStateSql,
} from './replica-state.ts';
export {
  ScopedPool,
  type ScopedPoolOptions,
  type ScopedTransaction,
  scopedPool,
  type TenantDb,
  type TransactionOptions,
  type UntrustedQueryOptions,
} from './scoped.ts';
export {
  CROSS_TENANT_FUNCTIONS,
  CROSS_TENANT_VIEWS,
  installSideChannelGuards,
  PG_CLASS_COUNT_COLUMNS,
  type SideChannelGuardOptions,
  type SideChannelProblem,
  sideChannelGuardSql,
  sideChannelProblems,
} from './side-channels.ts';
export {
  CURRENT_TENANT_SQL,
  type InstallOptions,
  type InstallResult,
  installSql,
  installTenantScope,
  type Queryable,
  quoteIdent,
  readBindingKey,
  TENANT_POLICY_NAME,
  type TenantTableOptions,
  tenantTableSql,
} from './sql.ts';
export { DEFAULT_UNTRUSTED_MAX_BYTES } from './untrusted.ts';
