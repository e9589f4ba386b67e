import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { containerRuntimeAvailable, type ResolvedService } from './runtime.ts';

/** How to reach an S3 server. Plain data, so it can cross vitest's provide/inject. */
export interface S3Connection {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** What answers: `ceph-radosgw`, `minio`, `s3rver`, or whatever S3_SERVER_NAME says. */
  server: string;
  /** True when the server verifies SigV4 signatures (every real server; not the s3rver fallback). */
  checksSignatures: boolean;
}

export interface ResolvedS3 extends ResolvedService, S3Connection {}

/**
 * An S3 server for tests, resolved in this order:
 * 1. `S3_ENDPOINT` (with `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`, falling back to the AWS_*
 *    variables, and `S3_REGION`, default us-east-1): CI sets these to the Ceph RADOS Gateway.
 * 2. else testcontainers MinIO, when a container runtime answers;
 * 3. else s3rver in a child process: the no-setup fallback. It does NOT check SigV4 signatures.
 */
export async function resolveS3(): Promise<ResolvedS3> {
  const endpoint = process.env.S3_ENDPOINT;
  if (endpoint) {
    const accessKeyId = process.env.S3_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.S3_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new Error('S3_ENDPOINT is set but S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY are not');
    }
    const server = process.env.S3_SERVER_NAME ?? 's3';
    return {
      source: 'env',
      endpoint,
      region: process.env.S3_REGION ?? 'us-east-1',
      accessKeyId,
      secretAccessKey,
      server,
      checksSignatures: process.env.S3_CHECKS_SIGNATURES !== 'false',
      describe: `S3 from S3_ENDPOINT: ${server} at ${endpoint} (SigV4 checked by the server)`,
      stop: async () => {},
    };
  }
  if (await containerRuntimeAvailable()) {
    const { MinioContainer } = await import('@testcontainers/minio');
    const c = await new MinioContainer('minio/minio:RELEASE.2025-09-07T16-13-09Z').start();
    return {
      source: 'testcontainers',
      endpoint: c.getConnectionUrl(),
      region: 'us-east-1',
      accessKeyId: c.getUsername(),
      secretAccessKey: c.getPassword(),
      server: 'minio',
      checksSignatures: true,
      describe: `MinIO (testcontainers) at ${c.getConnectionUrl()}`,
      stop: async () => {
        await c.stop();
      },
    };
  }
  return startS3rver();
}

/**
 * The no-setup fallback: s3rver 3.7.1 in a child process (it needs `--openssl-legacy-provider`
 * for ListObjectsV2 pagination). It stores objects on disk in a temporary directory and accepts any
 * SigV4 signature, so tests that need a real signature check must skip on it and say why.
 */
export async function startS3rver(): Promise<ResolvedS3> {
  const dir = await mkdtemp(join(tmpdir(), 'tenantscope-s3rver-'));
  const script = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script, dir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`s3rver exited early (code ${code})`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch (err) {
        reject(err);
      }
    });
  });
  child.unref();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    source: 'in-process',
    endpoint,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    server: 's3rver',
    checksSignatures: false,
    describe: `s3rver 3.7.1 at ${endpoint}: the no-setup in-process S3 fallback (does NOT check signatures; set S3_ENDPOINT for a real server)`,
    stop: async () => {
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      child.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/**
 * Client settings every S3 client in this project needs: path-style addressing, and checksums only
 * when an operation requires them (the SDK's default trailing checksums are not understood by
 * Ceph 16 or s3rver; with s3rver a streamed upload would be stored with its chunk framing).
 */
export function s3ClientConfig(c: S3Connection): S3ClientConfig {
  return {
    endpoint: c.endpoint,
    region: c.region,
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

/** An S3Client for a resolved server. */
export function s3Client(c: S3Connection): S3Client {
  return new S3Client(s3ClientConfig(c));
}

/** Creates a fresh bucket with a unique name (one per test file, so files can run in parallel). */
export async function createTestBucket(client: S3Client, label = 'test'): Promise<string> {
  const safe = label
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 30);
  const bucket = `ts-${safe}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`.slice(0, 63);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Deletes every object in a test bucket, then the bucket (best effort; returns false on failure). */
export async function deleteTestBucket(client: S3Client, bucket: string): Promise<boolean> {
  try {
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    return true;
  } catch {
    return false;
  }
}
