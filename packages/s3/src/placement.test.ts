import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createTestBucket, deleteTestBucket } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopedS3 } from './client.ts';
import { codeOf, type S3Fixture, s3Fixture } from './test-support.ts';

let f: S3Fixture;
let dedicated: string;
beforeAll(async () => {
  f = await s3Fixture('placement');
  dedicated = await createTestBucket(f.raw, 'placement-dedicated');
});
afterAll(async () => {
  if (dedicated) await deleteTestBucket(f.raw, dedicated);
  await f?.cleanup();
});

describe('placement seam', () => {
  it('a resolver can give one tenant its own bucket; tool code is unchanged', async () => {
    const s3 = scopedS3(f.raw, {
      bucket: f.bucket,
      placement: (t) =>
        t.id === 'globex'
          ? { tier: 'dedicated', bucket: dedicated, prefix: 'data/' }
          : { tier: 'shared', bucket: f.bucket, prefix: `tenants/${t.id}/` },
    });
    expect(s3.placementOf(f.globex)).toMatchObject({ tier: 'dedicated', bucket: dedicated });
    expect(s3.placementOf(f.acme)).toMatchObject({ tier: 'shared', bucket: f.bucket, prefix: 'tenants/acme/' });
    // The same "tool code" for both tenants.
    const tool = async (files: ReturnType<typeof s3.forTenant>) => {
      await files.put('report.txt', `report of ${files.tenantId}`);
      return (await files.list()).objects.map((o) => o.key);
    };
    expect(await tool(s3.forTenant(f.acme))).toEqual(['report.txt']);
    expect(await tool(s3.forTenant(f.globex))).toEqual(['report.txt']);
    const inDedicated = await f.raw.send(new ListObjectsV2Command({ Bucket: dedicated }));
    expect((inDedicated.Contents ?? []).map((o) => o.Key)).toEqual(['data/report.txt']);
    expect(await f.allKeys()).toEqual(['tenants/acme/report.txt']);
    expect(await s3.tenantData('globex').count()).toEqual({ objects: 1, bytes: 16 });
    expect(await codeOf(() => s3.forTenant(f.acme).get('../../data/report.txt'))).toBe('S3_KEY_INVALID');
  });

  it('a resolver that returns a bad placement fails closed', async () => {
    const bad = scopedS3(f.raw, {
      bucket: f.bucket,
      placement: () => ({ tier: 'shared', bucket: f.bucket, prefix: '' }),
    });
    expect(await codeOf(() => bad.forTenant(f.acme))).toBe('INVALID_CONFIG');
    const bad2 = scopedS3(f.raw, {
      bucket: f.bucket,
      placement: () => ({ tier: 'shared', bucket: 'Not_A_Bucket', prefix: 'x/' }),
    });
    expect(await codeOf(() => bad2.forTenant(f.acme))).toBe('INVALID_CONFIG');
  });
});
