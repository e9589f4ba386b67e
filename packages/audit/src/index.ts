/**
 * The backend-free entry: JSONL sinks, chain verification, anomaly detection. The Postgres sink is
 * `@tenantscope/audit/postgres` (needs `pg`), OpenTelemetry spans are `@tenantscope/audit/otel`
 * (needs `@opentelemetry/api`).
 */
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
export {
  DEFAULT_RETENTION_DAYS,
  MIN_RETENTION_DAYS,
  type PrivacyOptions,
  prepareEvent,
  type StoredEvent,
} from './event.ts';
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
