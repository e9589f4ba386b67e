/**
 * s3-placement: what resolving the placement on every operation costs the S3 client. Three sides
 * do the same GET of a 1 KB object for the same tenant on the same server, same sockets, same
 * concurrency: the raw S3Client (baseline), the scoped client with the default synchronous
 * shared-bucket resolver (the shared path), and the scoped client with an async resolver (the
 * shape of a placement-registry lookup on a cache hit). All are warmed up, then measured in
 * interleaved rounds (rotating order). Prints the median ms per call of each side and the ratios.
 *
 *   source .ci/services.d/10-ceph-rgw.sh && node test/bench/s3-placement/main.ts
 *   (S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY; BENCH_ROUNDS default 6,
 *   BENCH_CALLS per round and side default 400, BENCH_CONCURRENCY default 8)
 */
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type S3Placement, scopedS3 } from '@tenantscope/s3';
import { createTestIssuer, deleteTestBucket } from '@tenantscope/testkit';

const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) {
  console.log('s3-placement: SKIPPED: needs S3_ENDPOINT (source .ci/services.d/10-ceph-rgw.sh first)');
  process.exit(0);
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CALLS = Number(process.env.BENCH_CALLS ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const raw = new S3Client({
  endpoint,
  region: process.env.S3_REGION ?? 'us-east-1',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  credentials: {
    accessKeyId: process.env.S3_ACCESS_KEY_ID as string,
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY as string,
  },
});
const bucket = `ts-bench-placement-${Date.now().toString(36)}`;
await raw.send(new CreateBucketCommand({ Bucket: bucket }));
const acme = await (await createTestIssuer()).tenant('acme');
const placed: S3Placement = { tier: 'shared', bucket, prefix: 'tenants/acme/' };
const sync = scopedS3(raw, { bucket }).forTenant(acme);
const asyncResolved = scopedS3(raw, { bucket, placement: async () => placed }).forTenant(acme);
await sync.put('bench/object.txt', 'x'.repeat(1024));

const sides: { name: string; get: () => Promise<unknown> }[] = [
  {
    name: 'raw S3Client',
    get: async () => {
      const r = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'tenants/acme/bench/object.txt' }));
      return r.Body?.transformToString();
    },
  },
  { name: 'scoped, sync shared resolver', get: () => sync.getText('bench/object.txt') },
  { name: 'scoped, async resolver', get: () => asyncResolved.getText('bench/object.txt') },
];

async function time(get: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await get();
    }),
  );
  return (performance.now() - t0) / CALLS;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

console.log(
  `s3-placement: ${ROUNDS} interleaved rounds x ${CALLS} GETs of 1 KB per side, ${CONCURRENCY} in flight, server ${process.env.S3_SERVER_NAME ?? endpoint}, Node ${process.version}`,
);
for (const s of sides) await time(s.get); // warm-up: sockets, JIT
const times = sides.map(() => [] as number[]);
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < sides.length; k++) {
    const i = (r + k) % sides.length;
    times[i]?.push(await time((sides[i] as (typeof sides)[number]).get));
  }
}
const m = times.map(median);
const base = m[0] as number;
sides.forEach((s, i) => {
  const v = m[i] as number;
  console.log(`${s.name.padEnd(30)} ${v.toFixed(3)} ms/call  ratio to raw ${(v / base).toFixed(3)}`);
});
await deleteTestBucket(raw, bucket);
raw.destroy();
