export {
  type AnomalyAlert,
  AnomalyDetector,
  type AnomalyKind,
  type AnomalyOptions,
  alertEvent,
  type WindowRule,
  withAnomalyDetection,
} from './anomaly.ts';
export {
  type Anchor,
  type BreakCause,
  type ChainBreak,
  type ChainRow,
  GENESIS_HASH,
  linkHash,
  type StreamReport,
  type VerifyReport,
  type VerifyStreamInput,
  verifyStream,
} from './chain.ts';
export { type PrivacyOptions, prepareEvent, type StoredEvent } from './event.ts';
export {
  type AnchorStore,
  anchorJsonl,
  ChainedJsonlAuditSink,
  type ChainedJsonlAuditSinkOptions,
  formatLine,
  JsonlAnchorStore,
  jsonlStreams,
  parseLine,
  purgeJsonl,
  verifyJsonl,
} from './jsonl.ts';
export { type OpenTelemetryOptions, recordSpan, TENANT_ATTRIBUTE, withOpenTelemetry } from './otel.ts';
export {
  type AuditSchemaOptions,
  auditSchemaSql,
  DEFAULT_AUDIT_SCHEMA,
  migrateAuditSchema,
} from './postgres/schema.ts';
export { type PostgresAuditLog, type PostgresAuditLogOptions, setupPostgresAudit } from './postgres/setup.ts';
export { PostgresAuditSink, type PostgresAuditSinkOptions } from './postgres/sink.ts';
export {
  DEFAULT_RETENTION_DAYS,
  MIN_RETENTION_DAYS,
  PostgresAuditStore,
  type PostgresAuditStoreOptions,
  type PurgeOptions,
  type PurgeResult,
  purgePostgresAudit,
} from './postgres/store.ts';
