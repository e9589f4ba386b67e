/**
 * Policy generator: the IAM policy documents that let the store itself refuse what the scoped
 * client would. A tenant's policy allows object actions only under its placement (bucket + prefix)
 * and `s3:ListBucket` only with an `s3:prefix` inside it. The same statements serve as an STS
 * session policy (mode `sts`) and, with a principal, as a bucket policy for per-tenant users.
 */
import { TenantScopeError } from '@tenantscope/core';
import type { Placement } from './placement.ts';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: { AWS: string | string[] } | '*';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

/** Object actions a tenant may take on its own keys (multipart parts included). */
export const TENANT_OBJECT_ACTIONS = [
  's3:AbortMultipartUpload',
  's3:DeleteObject',
  's3:GetObject',
  's3:ListMultipartUploadParts',
  's3:PutObject',
] as const;

export interface TenantPolicyOptions {
  /** ARN partition: `aws` (default), `aws-cn`, `aws-us-gov`. Ceph RGW accepts `aws`. */
  partition?: string;
}

/** Only the parts of a placement a policy depends on. */
export type PolicyPlacement = Pick<Placement, 'bucket' | 'prefix'>;

function sidPart(tenantId: string): string {
  // Sids are [A-Za-z0-9]; tenant ids may hold `-` and `_`. `x` starts an escape (x + 4 hex digits),
  // so it is escaped too and two ids never share a Sid.
  return tenantId.replace(/[^A-Za-wyz0-9]/g, (c) => `x${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function statements(tenantId: string, p: PolicyPlacement, partition: string, principal?: string): PolicyStatement[] {
  const who = principal === undefined ? {} : { Principal: { AWS: [principal] } };
  const sid = sidPart(tenantId);
  return [
    {
      Sid: `Tenant${sid}Objects`,
      Effect: 'Allow',
      ...who,
      Action: [...TENANT_OBJECT_ACTIONS],
      Resource: [`arn:${partition}:s3:::${p.bucket}/${p.prefix}*`],
    },
    {
      Sid: `Tenant${sid}List`,
      Effect: 'Allow',
      ...who,
      Action: ['s3:ListBucket'],
      Resource: [`arn:${partition}:s3:::${p.bucket}`],
      Condition: { StringLike: { 's3:prefix': [`${p.prefix}*`] } },
    },
  ];
}

/**
 * The policy for one tenant's credentials (an STS session policy, or a per-tenant user's IAM
 * policy): its objects, and listing inside its prefix only.
 */
export function tenantPolicy(tenantId: string, placement: PolicyPlacement, options: TenantPolicyOptions = {}) {
  return {
    Version: '2012-10-17',
    Statement: statements(tenantId, placement, options.partition ?? 'aws'),
  } satisfies PolicyDocument;
}

export interface BucketGrant {
  tenantId: string;
  /** The tenant's principal ARN: on AWS `arn:aws:iam::<account>:user/<name>`, on Ceph `arn:aws:iam:::user/<uid>`. */
  principal: string;
  placement: PolicyPlacement;
}

/**
 * The bucket policy for per-tenant users (mode `users`, where STS is not available): each tenant's
 * principal gets its own prefix. Every grant must name the same bucket.
 */
export function tenantBucketPolicy(grants: readonly BucketGrant[], options: TenantPolicyOptions = {}): PolicyDocument {
  const buckets = new Set(grants.map((g) => g.placement.bucket));
  if (buckets.size > 1) {
    throw new TenantScopeError('INVALID_CONFIG', 'tenantBucketPolicy: every grant must name the same bucket');
  }
  return {
    Version: '2012-10-17',
    Statement: grants.flatMap((g) => statements(g.tenantId, g.placement, options.partition ?? 'aws', g.principal)),
  };
}

/**
 * Every write a move's fence refuses on the tenant's keys: objects (a PUT, a copy onto the key, a
 * multipart upload's create, parts and complete are all `s3:PutObject`), deletes, tags, ACLs,
 * retention and legal hold. Reads, listing and `s3:AbortMultipartUpload` stay allowed.
 */
export const FENCE_ACTIONS = [
  's3:PutObject',
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:PutObjectTagging',
  's3:PutObjectVersionTagging',
  's3:DeleteObjectTagging',
  's3:DeleteObjectVersionTagging',
  's3:PutObjectAcl',
  's3:PutObjectVersionAcl',
  's3:PutObjectRetention',
  's3:PutObjectLegalHold',
  's3:RestoreObject',
] as const;

/** Every fence statement's Sid starts with this (then the escaped tenant id, then `Users` or `Sessions`). */
export const FENCE_SID_PREFIX = 'TenantscopeMoveFence';

export interface FenceOptions extends TenantPolicyOptions {
  /**
   * The user (IAM user name; the RGW uid) the fence does not apply to: the mover, which still
   * deletes the old copy. Its role sessions are fenced like everyone else's.
   */
  exemptUser: string;
  /** Fence the whole bucket (a dedicated bucket) instead of the tenant's prefix in it. */
  wholeBucket?: boolean;
}

/** The Sids of one tenant's fence statements. */
export function fenceSids(tenantId: string): [string, string] {
  const sid = sidPart(tenantId);
  return [`${FENCE_SID_PREFIX}${sid}Users`, `${FENCE_SID_PREFIX}${sid}Sessions`];
}

/**
 * The bucket-policy statements of a move's fence: Deny every write (`FENCE_ACTIONS`) on the tenant's
 * prefix (or the whole bucket) to every principal but `exemptUser`. Two statements, because the
 * stores read the identity differently: `aws:username` names a user (on Ceph RGW a role session
 * carries the name of the user that assumed the role), and `aws:userid` holds a `:` exactly for role
 * sessions and federated users (`<role id>:<session>`), so the second denies every session.
 */
export function fenceStatements(
  tenantId: string,
  placement: PolicyPlacement,
  options: FenceOptions,
): PolicyStatement[] {
  if (typeof options.exemptUser !== 'string' || !/^[\w+=,.@$-]{1,128}$/.test(options.exemptUser)) {
    throw new TenantScopeError('INVALID_CONFIG', 'fenceStatements needs the exempt user name');
  }
  const partition = options.partition ?? 'aws';
  const [users, sessions] = fenceSids(tenantId);
  const base = {
    Effect: 'Deny' as const,
    Principal: '*' as const,
    Action: [...FENCE_ACTIONS],
    Resource: [`arn:${partition}:s3:::${placement.bucket}/${options.wholeBucket ? '' : placement.prefix}*`],
  };
  return [
    { Sid: users, ...base, Condition: { StringNotEquals: { 'aws:username': [options.exemptUser] } } },
    { Sid: sessions, ...base, Condition: { StringLike: { 'aws:userid': ['*:*'] } } },
  ];
}

/** True for a statement a move's fence put there (a Deny with a fence Sid): not policy drift. */
export function isFenceStatement(s: PolicyStatement): boolean {
  return s.Effect === 'Deny' && typeof s.Sid === 'string' && s.Sid.startsWith(FENCE_SID_PREFIX);
}
