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
import type { Tenant } from '@tenantscope/core';
import { createTestBucket, createTestIssuer, type S3Connection, s3Client } from '@tenantscope/testkit';
import { inject } from 'vitest';
import { type ScopedS3, type ScopedS3Options, scopedS3 } from './client.ts';

export interface S3Fixture {
  conn: S3Connection;
  raw: S3Client;
  bucket: string;
  s3: ScopedS3;
  acme: Tenant;
  globex: Tenant;
  /** Every key in the bucket, listed with the raw client (no scope). */
  allKeys(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function s3Fixture(label: string, options: Partial<ScopedS3Options> = {}): Promise<S3Fixture> {
  const conn = inject('s3');
  const raw = s3Client(conn);
  const bucket = await createTestBucket(raw, label);
  const issuer = await createTestIssuer();
  const acme = await issuer.tenant('acme');
  const globex = await issuer.tenant('globex');
  const s3 = scopedS3(raw, { bucket, ...options });
  const allKeys = async () => {
    const keys: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const out = await raw.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken }));
      for (const o of out.Contents ?? []) keys.push(o.Key as string);
      ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return keys;
  };
  const cleanup = async () => {
    try {
      // s3rver does not implement ListMultipartUploads; real servers do.
      const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch(() => undefined);
      for (const u of uploads?.Uploads ?? []) {
        await raw.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      }
      const keys = await allKeys();
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
  return { conn, raw, bucket, s3, acme, globex, allKeys, cleanup };
}

/** Runs `fn` and returns the error code it threw (or 'NO_ERROR'). */
export async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'NO_ERROR';
  } catch (err) {
    return (err as { code?: string }).code ?? `untyped: ${(err as Error).message}`;
  }
}
