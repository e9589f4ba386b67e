/** The official client, re-exported so an app can build the client it injects with one dependency. */
export { QdrantClient, type QdrantClientParams } from '@qdrant/js-client-rest';
export {
  type CountArgs,
  type FacetArgs,
  QdrantTenantData,
  type QueryArgs,
  type QueryGroupsArgs,
  type RetrieveArgs,
  ScopedQdrant,
  type ScopedQdrantOptions,
  type ScrollArgs,
  type SearchArgs,
  type SearchMatrixArgs,
  type Selector,
  scopedQdrant,
  type TenantData,
  type TenantQdrant,
  type UpdateResult,
  type UpsertArgs,
  type WriteOpts,
} from './client.ts';
export { QDRANT_ERROR_CODES, type QdrantErrorCode, qdrantError } from './errors.ts';
export {
  dedicatedCollections,
  type QdrantPlacement,
  type QdrantPlacementInput,
  type QdrantPlacementResolver,
  type QdrantTenantPlacementResolver,
  registryPlacement,
  shardKeyTier,
  sharedPlacement,
} from './placement.ts';
export { type Filter, type PointId, scopeFilter, tenantCondition } from './scope.ts';
