export type {
  ContextProvider,
  DeleteResult,
  PlacementBase,
  PlacementResolver,
  ScopedAdapter,
  StoreCount,
  TenantDataOps,
  Tier,
} from './adapter.ts';
export {
  API_KEY_ERROR_CODES,
  API_KEY_ID_LENGTH,
  API_KEY_ISSUER,
  API_KEY_PREFIX,
  type ApiKeyAttemptLimiter,
  type ApiKeyErrorCode,
  type ApiKeyHashAlgorithm,
  type ApiKeyRecord,
  type ApiKeyStore,
  type ApiKeyVerifierOptions,
  apiKeyError,
  apiKeyTokenId,
  type CreateApiKeyOptions,
  createApiKey,
  hashApiKey,
  MemoryApiKeyAttemptLimiter,
  MemoryApiKeyStore,
  parseApiKey,
  revokeApiKey,
  withApiKeys,
} from './api-keys.ts';
export {
  type AuditEvent,
  type AuditEventType,
  type AuditSink,
  type AuditStatus,
  argsHash,
  canonicalJson,
  JsonlAuditSink,
  type JsonlAuditSinkOptions,
  MemoryAuditSink,
  streamName,
  teeAuditSink,
} from './audit.ts';
export {
  type CallInfo,
  currentCall,
  currentTenant,
  type LogFields,
  type Logger,
  type LogWriter,
  type Providers,
  type ResourceProvider,
  type ResourcesOf,
  stderrLogWriter,
  type ToolContext,
} from './context.ts';
export {
  effectiveTools,
  loadTenantDirectory,
  StaticTenantDirectory,
  type TenantDirectory,
  type TenantLimits,
  type TenantPolicy,
  toolMatches,
} from './directory.ts';
export {
  ERROR_CODES,
  type ErrorCode,
  errorFactory,
  isTenantScopeError,
  TenantScopeError,
  type TenantScopeErrorOptions,
} from './errors.ts';
export { type CallLimiter, MemoryCallLimiter } from './limits.ts';
export { BoundedLru } from './lru.ts';
export { REDACTED, redactDeep } from './redact.ts';
export { UnauthenticatedAuditBound, type UnauthenticatedAuditOptions } from './refusal-audit.ts';
export {
  DEFAULT_MAX_RESULT_BYTES,
  jsonByteLength,
  ResultBudget,
  resultTooLarge,
} from './result-limit.ts';
export { MemoryRevocationStore, type MemoryRevocationStoreOptions, type RevocationStore } from './revocation.ts';
export {
  findOverrideFields,
  TenantScope,
  type TenantScopeLimits,
  type TenantScopeOptions,
  tenantScope,
} from './server.ts';
export { assertTenant, DEFAULT_TENANT_ID_PATTERN, isTenant, Tenant } from './tenant.ts';
export { defineTool, type ToolDefinition, ToolError, type ToolResult } from './tool.ts';
export { createVerifier, type KeySource, type TokenVerifier, type VerifierOptions } from './verifier.ts';
