export {
  ERROR_CODES,
  type ErrorCode,
  TenantScopeError,
  type TenantScopeErrorOptions,
  isTenantScopeError,
} from './errors.ts';
export { DEFAULT_TENANT_ID_PATTERN, Tenant, assertTenant, isTenant } from './tenant.ts';
export { type KeySource, type TokenVerifier, type VerifierOptions, createVerifier } from './verifier.ts';
export { MemoryRevocationStore, type MemoryRevocationStoreOptions, type RevocationStore } from './revocation.ts';
export {
  StaticTenantDirectory,
  type TenantDirectory,
  type TenantLimits,
  type TenantPolicy,
  effectiveTools,
  loadTenantDirectory,
  toolMatches,
} from './directory.ts';
export {
  type AuditEvent,
  type AuditEventType,
  type AuditSink,
  type AuditStatus,
  JsonlAuditSink,
  type JsonlAuditSinkOptions,
  MemoryAuditSink,
  argsHash,
  canonicalJson,
  streamName,
  teeAuditSink,
} from './audit.ts';
export {
  type CallInfo,
  type LogFields,
  type LogWriter,
  type Logger,
  type Providers,
  type ResourceProvider,
  type ResourcesOf,
  type ToolContext,
  currentCall,
  currentTenant,
  stderrLogWriter,
} from './context.ts';
export { type CallLimiter, MemoryCallLimiter } from './limits.ts';
export { BoundedLru } from './lru.ts';
export { REDACTED, redactDeep } from './redact.ts';
export { ToolError, type ToolDefinition, type ToolResult, defineTool } from './tool.ts';
export {
  TenantScope,
  type TenantScopeLimits,
  type TenantScopeOptions,
  findOverrideFields,
  tenantScope,
} from './server.ts';
