/**
 * Placement: where one tenant's objects live. The shared tier keeps every tenant in one bucket
 * under its own prefix (logical isolation); the dedicated tier gives a tenant a bucket of its own
 * (physical isolation), keeping the same prefix inside it as a second wall. The scoped client
 * reads bucket, prefix and client from the placement on every operation, so tool code does not
 * change when a tenant moves; with vended credentials the tenant's credentials are scoped to the
 * placement's bucket and prefix.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { type PlacementBase, TenantScopeError, type Tier } from '@tenantscope/core';
import { checkPrefix } from './keys.ts';

/**
 * What placement sees of a tenant: its id only. Placement must be a function of the verified
 * tenant id (never of other token claims), so operators can find a tenant's data without a token
 * (DSAR) and a token cannot move a tenant's data.
 */
export interface TenantRef {
  readonly id: string;
}

export interface S3Placement extends PlacementBase {
  /** `shared`: a bucket shared by tenants, isolated by prefix. `dedicated`: the tenant's own bucket. */
  tier: Tier;
  /** The bucket. */
  bucket: string;
  /** The tenant's prefix inside it; always ends in `/` (so `t1/` never matches `t10/`). */
  prefix: string;
  /** The client to reach the bucket with, if not the one passed to `scopedS3` (e.g. another account). */
  client?: S3Client;
}

/** @deprecated use `S3Placement` (the same type). */
export type Placement = S3Placement;

/**
 * Resolves a tenant's placement. Called once per operation (not once per `forTenant`), so a moved
 * tenant's next call goes to its new bucket. It may return a Promise (e.g. a cached lookup in the
 * placement registry of `@tenantscope/postgres`); a synchronous answer keeps the call free of waits.
 */
export type PlacementResolver = (tenant: TenantRef) => S3Placement | Promise<S3Placement>;

/** A resolver that answers synchronously (`sharedBucket`, `tieredPlacement`). */
export type SyncPlacementResolver = (tenant: TenantRef) => S3Placement;

/** The default prefix: `tenants/<id>/`. */
export const defaultPrefix = (tenant: TenantRef): string => `tenants/${tenant.id}/`;

/** Shared bucket with a per-tenant prefix. */
export function sharedBucket(
  bucket: string,
  prefix: (tenant: TenantRef) => string = defaultPrefix,
): SyncPlacementResolver {
  checkBucket(bucket);
  return (tenant) => ({ tier: 'shared', bucket, prefix: prefix(tenant) });
}

/**
 * Dedicated buckets for some tenants, `shared` for the rest. `bucketOf` returns the tenant's own
 * bucket, or undefined to keep it on the shared tier (it must not name the shared bucket, and two
 * tenants must never get the same one). The prefix inside a dedicated bucket defaults to the shared
 * tier's `tenants/<id>/`, so keys are the same on both tiers and a wrong bucket still misses.
 */
export function tieredPlacement(
  shared: SyncPlacementResolver,
  bucketOf: (tenant: TenantRef) => string | undefined,
  prefix: (tenant: TenantRef) => string = defaultPrefix,
): SyncPlacementResolver {
  return (tenant) => {
    const own = bucketOf(tenant);
    if (own === undefined) return shared(tenant);
    const base = shared(tenant);
    if (own === base.bucket) {
      throw new TenantScopeError('INVALID_CONFIG', 'a dedicated bucket must not be the shared bucket');
    }
    return { tier: 'dedicated', bucket: own, prefix: prefix(tenant) };
  };
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function checkBucket(bucket: unknown): asserts bucket is string {
  if (typeof bucket !== 'string' || !BUCKET.test(bucket) || bucket.includes('..')) {
    throw new TenantScopeError('INVALID_CONFIG', 'bucket must be a valid S3 bucket name');
  }
}

/** Validates a resolved placement; throws INVALID_CONFIG. */
export function checkPlacement(p: S3Placement): S3Placement {
  if (!p || (p.tier !== 'shared' && p.tier !== 'dedicated')) {
    throw new TenantScopeError('INVALID_CONFIG', 'placement.tier must be "shared" or "dedicated"');
  }
  checkBucket(p.bucket);
  checkPrefix(p.prefix);
  return p;
}
