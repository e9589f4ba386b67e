/**
 * The dedicated tier: acme and globex each get a bucket of their own (initech and hooli, created
 * by the corpus, stay on the shared bucket), and on a server with STS every call is signed with
 * credentials scoped to the tenant's own bucket and prefix. The same isolation corpus as the shared
 * tier runs unchanged, then the tier's own walls are checked with the raw client.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { scopedSuite } from './scoped-suite.ts';
import { clientConfig, s3Fixture, s3Outcome, testVendors, vendingEnv } from './test-support.ts';

const conn = inject('s3');
const env = vendingEnv(conn);
if (env.skip) console.log(`[s3 dedicated] running WITHOUT vended credentials (the bucket wall only): ${env.skip}`);
const vendor = env.skip ? undefined : testVendors(conn).sts();

const fixture = scopedSuite('dedicated', () => s3Fixture('dedicated', {}, { dedicated: ['acme', 'globex'], vendor }));

describe('dedicated tier', () => {
  it("each dedicated tenant's objects are in its own bucket, under the same prefix; the shared bucket has none", async () => {
    const f = fixture();
    await f.s3.forTenant(f.acme).put('tier/a.txt', 'acme on its own bucket');
    await f.s3.forTenant(f.globex).put('tier/g.txt', 'globex on its own bucket');
    const acmeBucket = f.dedicated.get('acme') as string;
    const globexBucket = f.dedicated.get('globex') as string;
    expect(f.s3.placementOf(f.acme)).toEqual({ tier: 'dedicated', bucket: acmeBucket, prefix: 'tenants/acme/' });
    const keysOf = async (Bucket: string) =>
      ((await f.raw.send(new ListObjectsV2Command({ Bucket }))).Contents ?? []).map((o) => o.Key);
    expect(await keysOf(acmeBucket)).toContain('tenants/acme/tier/a.txt');
    expect((await keysOf(acmeBucket)).every((k) => k?.startsWith('tenants/acme/'))).toBe(true);
    expect((await keysOf(globexBucket)).every((k) => k?.startsWith('tenants/globex/'))).toBe(true);
    expect((await keysOf(f.bucket)).filter((k) => /^tenants\/(acme|globex)\//.test(k ?? ''))).toEqual([]);
  });

  it.skipIf(env.skip)(
    "acme's vended credentials reach only its bucket and prefix: the shared bucket and globex's bucket are AccessDenied",
    async () => {
      const f = fixture();
      const acmeBucket = f.dedicated.get('acme') as string;
      const globexBucket = f.dedicated.get('globex') as string;
      await f.s3.forTenant(f.globex).put('secret/plan.txt', 'globex canary');
      const creds = await (vendor as NonNullable<typeof vendor>).credentialsFor('acme', f.s3.placementOf(f.acme));
      const acme = new S3Client({ ...clientConfig(conn), credentials: creds });
      expect(
        await s3Outcome(() => acme.send(new ListObjectsV2Command({ Bucket: acmeBucket, Prefix: 'tenants/acme/' }))),
      ).toBe('OK');
      for (const [Bucket, Key] of [
        [globexBucket, 'tenants/globex/secret/plan.txt'],
        [f.bucket, 'tenants/acme/tier/a.txt'],
        [acmeBucket, 'elsewhere.txt'],
      ] as const) {
        // The object exists (Ceph RGW 16 answers 404, not 403, for an absent key: see vended.test.ts).
        await f.raw.send(new PutObjectCommand({ Bucket, Key, Body: 'not acme' }));
        expect(await s3Outcome(() => acme.send(new GetObjectCommand({ Bucket, Key }))), `${Bucket}/${Key}`).toBe(
          'AccessDenied 403',
        );
        expect(
          await s3Outcome(() => acme.send(new PutObjectCommand({ Bucket, Key, Body: 'x' }))),
          `${Bucket}/${Key}`,
        ).toBe('AccessDenied 403');
      }
      for (const Bucket of [globexBucket, f.bucket]) {
        expect(await s3Outcome(() => acme.send(new ListObjectsV2Command({ Bucket, Prefix: 'tenants/acme/' })))).toBe(
          'AccessDenied 403',
        );
      }
      acme.destroy();
    },
  );
});
