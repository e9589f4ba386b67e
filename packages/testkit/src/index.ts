export { type MintOptions, type TestIssuer, type TestIssuerOptions, createTestIssuer } from './tokens.ts';
export { codeOf, type Rejection, rejection } from './errors.ts';
export { type ResolvedService, type ServiceSource, containerRuntimeAvailable } from './services/runtime.ts';
export { type ResolvedPostgres, freePort, resolvePostgres, startEmbeddedPostgres } from './services/postgres.ts';
// Adapters add their service resolvers and protocol doubles below, one line each.
export { QdrantProtocolDouble, type QdrantProtocolDoubleOptions } from './doubles/qdrant.ts';
export { type QdrantRecordingProxy, type QdrantWireInvariantOptions, qdrantWireViolations, type RecordedQdrantRequest, startQdrantRecordingProxy } from './doubles/qdrant-recorder.ts';
export { QDRANT_TEST_IMAGE, type ResolvedQdrant, resolveQdrant } from './services/qdrant.ts';
export {
  type ResolvedS3,
  type S3Connection,
  createTestBucket,
  deleteTestBucket,
  resolveS3,
  s3Client,
  s3ClientConfig,
  startS3rver,
} from './services/s3.ts';
export { type SecretsManagerDoubleCall, type SecretsManagerDoubleOptions, type SecretsManagerOperation, SECRETS_MANAGER_OPERATIONS, SecretsManagerProtocolDouble } from './doubles/secrets-manager.ts';
export { type ResolvedSecretsManager, resolveSecretsManager } from './services/secrets-manager.ts';
