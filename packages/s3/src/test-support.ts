/**
 * Shared set-up for this package's tests (not exported from the package): a fresh bucket per test
 * file on the resolved S3 server, verified tenants, and an unscoped view of the whole bucket for
 * asserting where objects really landed.
 */
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import type { Tenant } from '@tenantscope/core';
import {
  createTestBucket,
  createTestIssuer,
  deleteTestBucket,
  type S3Connection,
  s3Client,
} from '@tenantscope/testkit';
import { inject } from 'vitest';
import { type ScopedS3, type ScopedS3Options, scopedS3 } from './client.ts';
import { type CredentialVendor, stsCredentials, tenantUserCredentials } from './credentials.ts';
import { sharedBucket, tieredPlacement } from './placement.ts';

export interface S3Fixture {
  conn: S3Connection;
  raw: S3Client;
  bucket: string;
  /** Dedicated buckets by tenant id (tier fixtures only). */
  dedicated: Map<string, string>;
  s3: ScopedS3;
  acme: Tenant;
  globex: Tenant;
  /** Every key in the bucket, listed with the raw client (no scope). */
  allKeys(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export interface TierOptions {
  /** Tenants that get a bucket of their own (same `tenants/<id>/` prefix inside it). */
  dedicated?: string[];
  /** Sign every tenant call with vended credentials from this vendor. */
  vendor?: CredentialVendor;
}

export async function s3Fixture(
  label: string,
  options: Partial<ScopedS3Options> = {},
  tier: TierOptions = {},
): Promise<S3Fixture> {
  const conn = inject('s3');
  const raw = s3Client(conn);
  const bucket = await createTestBucket(raw, label);
  const issuer = await createTestIssuer();
  const acme = await issuer.tenant('acme');
  const globex = await issuer.tenant('globex');
  const dedicated = new Map<string, string>();
  for (const t of tier.dedicated ?? []) dedicated.set(t, await createTestBucket(raw, `${label}-${t}`));
  const s3 = scopedS3(raw, {
    bucket,
    ...(tier.dedicated ? { placement: tieredPlacement(sharedBucket(bucket), (t) => dedicated.get(t.id)) } : {}),
    ...(tier.vendor ? { credentials: { vendor: tier.vendor, clientConfig: clientConfig(conn) } } : {}),
    ...options,
  });
  const listBucket = async (b: string) => {
    const keys: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const out = await raw.send(new ListObjectsV2Command({ Bucket: b, ContinuationToken }));
      for (const o of out.Contents ?? []) keys.push(o.Key as string);
      ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return keys;
  };
  /** Keys of the shared bucket and every dedicated one (each tenant's keep their `tenants/<id>/` prefix). */
  const allKeys = async () => (await Promise.all([bucket, ...dedicated.values()].map(listBucket))).flat();
  const cleanup = async () => {
    for (const b of dedicated.values()) await deleteTestBucket(raw, b);
    try {
      // s3rver does not implement ListMultipartUploads; real servers do.
      const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch(() => undefined);
      for (const u of uploads?.Uploads ?? []) {
        await raw.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      }
      const keys = await listBucket(bucket);
      for (let i = 0; i < keys.length; i += 1000) {
        await raw.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
          }),
        );
      }
      await raw.send(new DeleteBucketCommand({ Bucket: bucket }));
    } catch (err) {
      console.warn(`[s3 test] cleanup of bucket ${bucket} failed: ${(err as Error).message}`);
    }
    raw.destroy();
  };
  return { conn, raw, bucket, dedicated, s3, acme, globex, allKeys, cleanup };
}

/** The S3 error name (AccessDenied, NoSuchKey, …) a raw call ends in, or OK. */
export async function s3Outcome(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'OK';
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    return `${e.name} ${e.$metadata?.httpStatusCode}`;
  }
}

/** Runs `fn` and returns the error code it threw, or 'ok' (the testkit's). */
export { codeOf } from '@tenantscope/testkit';

/** The configuration of the per-tenant clients: the test server's, without credentials. */
export function clientConfig(conn: S3Connection) {
  return {
    endpoint: conn.endpoint,
    region: conn.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
  };
}

/**
 * What the vended-credential tests need from the server: STS (a role to assume) and per-tenant
 * users, as .ci/services.d/10-ceph-rgw.sh sets up on Ceph RGW. `skip` says why they cannot run.
 */
export function vendingEnv(conn: S3Connection): {
  skip: string | undefined;
  roleArn: string;
  minSeconds: number;
  users: Map<string, { uid: string; accessKeyId: string; secretAccessKey: string }>;
} {
  const users = new Map<string, { uid: string; accessKeyId: string; secretAccessKey: string }>();
  for (const entry of (process.env.S3_TENANT_USERS ?? '').split(',').filter(Boolean)) {
    const [tenant, rest] = entry.split('=') as [string, string];
    const [uid, accessKeyId, secretAccessKey] = rest.split(':') as [string, string, string];
    users.set(tenant, { uid, accessKeyId, secretAccessKey });
  }
  const roleArn = process.env.S3_STS_ROLE_ARN ?? '';
  const skip = !conn.checksSignatures
    ? `${conn.server} is the no-setup fallback: it checks no signatures and has no STS or bucket policies; set S3_ENDPOINT to Ceph RGW (CI does, via .ci/services.d/10-ceph-rgw.sh)`
    : !roleArn || users.size < 2
      ? 'S3_STS_ROLE_ARN / S3_TENANT_USERS are not set: the S3 server was not prepared by .ci/services.d/10-ceph-rgw.sh (STS role and per-tenant users)'
      : undefined;
  return { skip, roleArn, minSeconds: Number(process.env.S3_STS_MIN_SECONDS ?? 900), users };
}

/** An STS client signed as the CI user (the principal the role trusts). */
export function stsClient(conn: S3Connection): STSClient {
  return new STSClient({
    endpoint: conn.endpoint,
    region: conn.region,
    credentials: { accessKeyId: conn.accessKeyId, secretAccessKey: conn.secretAccessKey },
  });
}

/** The vendors the tier fixtures use on a server prepared for them. */
export function testVendors(conn: S3Connection) {
  const env = vendingEnv(conn);
  return {
    sts: (opts: { durationSeconds?: number; refreshMarginSeconds?: number } = {}) =>
      stsCredentials({ sts: stsClient(conn), roleArn: env.roleArn, durationSeconds: 900, ...opts }),
    users: tenantUserCredentials((id) => env.users.get(id)),
  };
}
