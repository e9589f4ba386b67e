/** `@tenantscope/audit/postgres`: the Postgres audit sink, store and schema (optional peer: `pg`). */
export {
  type AuditSchemaOptions,
  auditSchemaSql,
  DEFAULT_AUDIT_SCHEMA,
  migrateAuditSchema,
} from './schema.ts';
export type { AuditPoolerMode } from './session.ts';
export { type PostgresAuditLog, type PostgresAuditLogOptions, setupPostgresAudit } from './setup.ts';
export { PostgresAuditSink, type PostgresAuditSinkOptions } from './sink.ts';
export {
  PostgresAuditStore,
  type PostgresAuditStoreOptions,
  type PurgeOptions,
  type PurgeResult,
  purgePostgresAudit,
} from './store.ts';
