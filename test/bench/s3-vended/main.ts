/**
 * s3-vended: the cost per call of tenant-scoped (vended) STS credentials with a warm credential
 * cache, against the shared-credential path. Both sides are the scoped client doing the same
 * calls (GET of a 1 KB object, and PUT of one) for the same tenant on the same server, through the
 * same sockets (the vended per-tenant client shares the base client's request handler), the same
 * concurrency; both are warmed up fully, then measured in interleaved rounds. Prints the median ms
 * per call of each side and the ratio, and the cost of one warm `credentialsFor` lookup alone.
 *
 *   source .ci/services.d/10-ceph-rgw.sh && node test/bench/s3-vended/main.ts
 *   (S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_STS_ROLE_ARN; BENCH_ROUNDS default 6,
 *   BENCH_CALLS per round and side default 400, BENCH_CONCURRENCY default 8)
 */
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { scopedS3, stsCredentials, type TenantS3 } from '@tenantscope/s3';
import { createTestIssuer, deleteTestBucket } from '@tenantscope/testkit';

const endpoint = process.env.S3_ENDPOINT;
const roleArn = process.env.S3_STS_ROLE_ARN;
if (!endpoint || !roleArn) {
  console.log(
    's3-vended: SKIPPED: needs S3_ENDPOINT and S3_STS_ROLE_ARN (a server with STS): source .ci/services.d/10-ceph-rgw.sh first',
  );
  process.exit(0);
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CALLS = Number(process.env.BENCH_CALLS ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const region = process.env.S3_REGION ?? 'us-east-1';
const credentials = {
  accessKeyId: process.env.S3_ACCESS_KEY_ID as string,
  secretAccessKey: process.env.S3_SECRET_ACCESS_KEY as string,
};
const clientConfig = {
  endpoint,
  region,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED' as const,
  responseChecksumValidation: 'WHEN_REQUIRED' as const,
};
const raw = new S3Client({ ...clientConfig, credentials });
const bucket = `ts-bench-vended-${Date.now().toString(36)}`;
await raw.send(new CreateBucketCommand({ Bucket: bucket }));

const vendor = stsCredentials({
  sts: { endpoint, region, credentials },
  roleArn,
  durationSeconds: 900,
});
const shared = scopedS3(raw, { bucket });
const vended = scopedS3(raw, { bucket, credentials: { vendor, clientConfig } });
const issuer = await createTestIssuer();
const acme = await issuer.tenant('acme');
const sides: { name: string; files: TenantS3 }[] = [
  { name: 'shared credentials', files: shared.forTenant(acme) },
  { name: 'vended STS credentials (warm cache)', files: vended.forTenant(acme) },
];
const body = 'x'.repeat(1024);
await sides[0]?.files.put('bench/object.txt', body);

type Op = (files: TenantS3, i: number) => Promise<unknown>;
const ops: { name: string; op: Op }[] = [
  { name: 'GET 1 KB', op: (f) => f.getText('bench/object.txt') },
  { name: 'PUT 1 KB', op: (f, i) => f.put(`bench/put-${i % 64}.txt`, body) },
];

/** Mean ms per call over CALLS calls, CONCURRENCY in flight. */
async function time(files: TenantS3, op: Op): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CALLS) await op(files, next++);
    }),
  );
  return (performance.now() - t0) / CALLS;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

console.log(
  `s3-vended: ${ROUNDS} interleaved rounds x ${CALLS} calls per side, ${CONCURRENCY} in flight, server ${process.env.S3_SERVER_NAME ?? endpoint}, Node ${process.version}`,
);
for (const { name, op } of ops) {
  // Warm-up: both sides (fills the credential cache, opens the sockets, JIT).
  for (const s of sides) await time(s.files, op);
  const times = sides.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) times[i]?.push(await time((sides[i] as (typeof sides)[number]).files, op));
  }
  const [a, b] = times.map(median) as [number, number];
  console.log(
    `${name.padEnd(9)} ${sides[0]?.name}: ${a.toFixed(3)} ms/call | ${sides[1]?.name}: ${b.toFixed(3)} ms/call | ratio vended/shared ${(b / a).toFixed(3)}`,
  );
}
// The warm credential lookup alone (what a call adds to signing): one LRU hit.
const placement = vended.placementOf({ id: 'acme' });
const N = 100_000;
const t0 = performance.now();
for (let i = 0; i < N; i++) await vendor.credentialsFor('acme', placement);
console.log(`warm credentialsFor: ${(((performance.now() - t0) / N) * 1000).toFixed(2)} µs per lookup`);
await deleteTestBucket(raw, bucket);
raw.destroy();
