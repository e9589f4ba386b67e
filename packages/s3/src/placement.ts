/**
 * Placement: where one tenant's objects live. Today every tenant shares one bucket under its own
 * prefix (logical isolation). A later issue adds dedicated buckets (physical isolation); the
 * scoped client already reads bucket, prefix and client from the placement, so tool code does not
 * change when a tenant moves.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { TenantScopeError } from '@tenantscope/core';
import { checkPrefix } from './keys.ts';

/**
 * What placement sees of a tenant: its id only. Placement must be a function of the verified
 * tenant id (never of other token claims), so operators can find a tenant's data without a token
 * (DSAR) and a token cannot move a tenant's data.
 */
export interface TenantRef {
  readonly id: string;
}

export interface Placement {
  /** `shared`: a bucket shared by tenants, isolated by prefix. `dedicated`: the tenant's own bucket. */
  tier: 'shared' | 'dedicated';
  /** The bucket. */
  bucket: string;
  /** The tenant's prefix inside it; always ends in `/` (so `t1/` never matches `t10/`). */
  prefix: string;
  /** The client to reach the bucket with, if not the one passed to `scopedS3` (e.g. another account). */
  client?: S3Client;
}

/** Resolves a tenant's placement. Called on every `forTenant`; keep it cheap and pure. */
export type PlacementResolver = (tenant: TenantRef) => Placement;

/** The default prefix: `tenants/<id>/`. */
export const defaultPrefix = (tenant: TenantRef): string => `tenants/${tenant.id}/`;

/** Shared bucket with a per-tenant prefix: the only tier built so far. */
export function sharedBucket(bucket: string, prefix: (tenant: TenantRef) => string = defaultPrefix): PlacementResolver {
  checkBucket(bucket);
  return (tenant) => ({ tier: 'shared', bucket, prefix: prefix(tenant) });
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function checkBucket(bucket: unknown): asserts bucket is string {
  if (typeof bucket !== 'string' || !BUCKET.test(bucket) || bucket.includes('..')) {
    throw new TenantScopeError('INVALID_CONFIG', 'bucket must be a valid S3 bucket name');
  }
}

/** Validates a resolved placement; throws INVALID_CONFIG. */
export function checkPlacement(p: Placement): Placement {
  if (!p || (p.tier !== 'shared' && p.tier !== 'dedicated')) {
    throw new TenantScopeError('INVALID_CONFIG', 'placement.tier must be "shared" or "dedicated"');
  }
  checkBucket(p.bucket);
  checkPrefix(p.prefix);
  return p;
}
