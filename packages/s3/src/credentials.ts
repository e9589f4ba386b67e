/**
 * Tenant-scoped credentials ("token vending machine"): every scoped call is signed with
 * credentials whose policy allows only the tenant's placement, so the S3 server itself refuses
 * another tenant's keys even if the scoped client had a bug or a tool reached for a raw client.
 *
 * Two modes:
 * - `stsCredentials`: STS AssumeRole with an inline session policy per tenant (`tenantPolicy`),
 *   cached in a bounded LRU until `refreshMarginSeconds` before expiry, one AssumeRole in flight
 *   per tenant placement however many calls wait for it.
 * - `tenantUserCredentials`: a long-lived key per tenant user, for stores without STS; the bucket
 *   policy from `tenantBucketPolicy` confines each user to its prefix (`checkBucketPolicy` watches it).
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient, type STSClientConfig } from '@aws-sdk/client-sts';
import { TenantScopeError } from '@tenantscope/core';
import { LRUCache } from 'lru-cache';
import { s3Error } from './errors.ts';
import type { Placement } from './placement.ts';
import { type TenantPolicyOptions, tenantPolicy } from './policy.ts';

/** Credentials as the AWS SDK takes them. */
export interface TenantCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When they stop working (STS); absent for long-lived keys. */
  expiration?: Date;
}

/** Gives the credentials one tenant's calls are signed with. */
export interface CredentialVendor {
  readonly mode: 'sts' | 'users';
  /** Credentials whose policy allows only this placement. Throws `S3_CREDENTIALS_FAILED`. */
  credentialsFor(tenantId: string, placement: Placement): Promise<TenantCredentials>;
}

export interface StsCredentialOptions extends TenantPolicyOptions {
  /**
   * An STS client signed as a principal the role trusts (not the tenant's), or the configuration
   * to build one with (endpoint, region, credentials).
   */
  sts: Pick<STSClient, 'send'> | STSClientConfig;
  /** The role to assume; its own policy must allow at least what `tenantPolicy` allows. */
  roleArn: string;
  /** Session length in seconds. Default 900 (AWS's minimum; RGW's is `rgw sts min session duration`). */
  durationSeconds?: number;
  /** Refresh this many seconds before expiry. Default 60; must be less than `durationSeconds`. */
  refreshMarginSeconds?: number;
  /** At most this many tenant placements cached (LRU). Default 1000. */
  maxTenants?: number;
  /** `ExternalId` for the AssumeRole call, when the role's trust policy requires one. */
  externalId?: string;
  /** Clock in epoch milliseconds, for tests (the cache's TTLs run on it too). Default: the system clock. */
  clock?: { now(): number };
}

/** Placement key: the policy depends on the tenant, bucket and prefix. */
const cacheKey = (tenantId: string, p: Placement) => JSON.stringify([tenantId, p.bucket, p.prefix]);

interface Context {
  tenantId: string;
  placement: Placement;
}

/** Credentials from STS AssumeRole with a per-tenant inline session policy. */
export function stsCredentials(options: StsCredentialOptions): CredentialVendor {
  const duration = options.durationSeconds ?? 900;
  const margin = options.refreshMarginSeconds ?? 60;
  const max = options.maxTenants ?? 1000;
  if (!options.sts || typeof options.sts !== 'object') {
    throw new TenantScopeError('INVALID_CONFIG', 'stsCredentials needs an STS client or its configuration');
  }
  const sts: Pick<STSClient, 'send'> =
    typeof (options.sts as { send?: unknown }).send === 'function'
      ? (options.sts as Pick<STSClient, 'send'>)
      : new STSClient(options.sts as STSClientConfig);
  if (typeof options.roleArn !== 'string' || !options.roleArn.startsWith('arn:')) {
    throw new TenantScopeError('INVALID_CONFIG', 'stsCredentials needs roleArn');
  }
  if (!Number.isInteger(duration) || duration < 1 || duration > 43200) {
    throw new TenantScopeError('INVALID_CONFIG', 'durationSeconds must be an integer from 1 to 43200');
  }
  if (!Number.isFinite(margin) || margin < 0 || margin >= duration) {
    throw new TenantScopeError('INVALID_CONFIG', 'refreshMarginSeconds must be at least 0 and below durationSeconds');
  }
  if (!Number.isInteger(max) || max < 1) throw new TenantScopeError('INVALID_CONFIG', 'maxTenants must be >= 1');
  // Wall-clock ms of the clock's zero, so `expiration` (a Date) maps onto the cache's clock.
  const clock = options.clock ?? performance;
  const wallNow = () => clock.now() + (options.clock ? 0 : performance.timeOrigin);

  const assume = async (ctx: Context): Promise<TenantCredentials> => {
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: options.roleArn,
        RoleSessionName: `ts-${ctx.tenantId}`.slice(0, 64),
        DurationSeconds: duration,
        ExternalId: options.externalId,
        Policy: JSON.stringify(tenantPolicy(ctx.tenantId, ctx.placement, options)),
      }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
      throw new Error('AssumeRole answered without complete credentials');
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(c.Expiration),
    };
  };

  const cache = new LRUCache<string, TenantCredentials, Context>({
    max,
    ttl: 1000,
    perf: clock,
    // lru-cache runs one fetchMethod per key at a time: concurrent callers share it (single flight).
    fetchMethod: async (_key, stale, { options: set, context }) => {
      let fresh: TenantCredentials;
      try {
        fresh = await assume(context);
      } catch (err) {
        // A failed refresh keeps serving credentials that still work, retried in a second.
        if (stale?.expiration && stale.expiration.getTime() - wallNow() > 5000) {
          set.ttl = 1000;
          return stale;
        }
        throw s3Error('S3_CREDENTIALS_FAILED', 'could not obtain tenant credentials from STS', {
          cause: err,
          details: { mode: 'sts' },
        });
      }
      set.ttl = Math.max(1, (fresh.expiration as Date).getTime() - wallNow() - margin * 1000);
      return fresh;
    },
  });

  return {
    mode: 'sts',
    async credentialsFor(tenantId, placement) {
      const got = await cache.fetch(cacheKey(tenantId, placement), { context: { tenantId, placement } });
      if (!got) throw s3Error('S3_CREDENTIALS_FAILED', 'no tenant credentials', { details: { mode: 'sts' } });
      return got;
    },
  };
}

/**
 * Long-lived credentials of one user per tenant (where STS is not available). `keys` returns the
 * tenant's key pair, or undefined for a tenant with none: its calls then fail closed.
 */
export function tenantUserCredentials(
  keys: (tenantId: string) => { accessKeyId: string; secretAccessKey: string } | undefined,
): CredentialVendor {
  if (typeof keys !== 'function')
    throw new TenantScopeError('INVALID_CONFIG', 'tenantUserCredentials needs a function');
  return {
    mode: 'users',
    async credentialsFor(tenantId) {
      const k = keys(tenantId);
      if (!k?.accessKeyId || !k.secretAccessKey) {
        throw s3Error('S3_CREDENTIALS_FAILED', 'the tenant has no S3 user', { details: { mode: 'users' } });
      }
      return { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
    },
  };
}

export interface VendedCredentialsOption {
  /** Where the credentials come from: `stsCredentials(...)` or `tenantUserCredentials(...)`. */
  vendor: CredentialVendor;
  /**
   * The per-tenant S3 clients' configuration (endpoint, region, forcePathStyle, checksum settings);
   * `credentials` is always the vendor's. The request handler (sockets) of the client given to
   * `scopedS3` is shared unless this sets its own.
   */
  clientConfig: Omit<S3ClientConfig, 'credentials'>;
  /** At most this many per-tenant clients kept (LRU). Default 1000. */
  maxClients?: number;
}

/** @internal Per-tenant S3 clients signed with vended credentials, bounded. */
export function vendedClients(
  option: VendedCredentialsOption,
  base: S3Client,
): (tenantId: string, placement: Placement) => S3Client {
  if (!option?.vendor || typeof option.vendor.credentialsFor !== 'function' || !option.clientConfig) {
    throw new TenantScopeError('INVALID_CONFIG', 'credentials needs a vendor and a clientConfig');
  }
  const clients = new LRUCache<string, S3Client>({ max: option.maxClients ?? 1000 });
  const requestHandler = option.clientConfig.requestHandler ?? base.config.requestHandler;
  return (tenantId, placement) => {
    const k = cacheKey(tenantId, placement);
    let c = clients.get(k);
    if (!c) {
      c = new S3Client({
        ...option.clientConfig,
        requestHandler,
        credentials: () => option.vendor.credentialsFor(tenantId, placement),
      });
      clients.set(k, c);
    }
    return c;
  };
}
