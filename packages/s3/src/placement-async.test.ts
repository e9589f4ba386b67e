/**
 * Placement is resolved per operation and may be async (the registry's cached lookup): a handle
 * taken before a move writes to the new bucket after it, with no new `forTenant`; a resolver's
 * typed refusal (a paused tenant) passes through and nothing is written; an async resolver's bad
 * placement fails closed. On the old code (placement fixed at `forTenant`) the first test fails:
 * the handle kept writing to the shared bucket.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { TenantScopeError } from '@tenantscope/core';
import { createTestBucket, deleteTestBucket } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopedS3 } from './client.ts';
import type { S3Placement } from './placement.ts';
import { codeOf, type S3Fixture, s3Fixture } from './test-support.ts';

let f: S3Fixture;
let own: string;
beforeAll(async () => {
  f = await s3Fixture('placement-async');
  own = await createTestBucket(f.raw, 'placement-own');
});
afterAll(async () => {
  if (own) await deleteTestBucket(f.raw, own);
  await f?.cleanup();
});

const keysIn = async (bucket: string) =>
  ((await f.raw.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key).sort();

describe('placement resolved per operation', () => {
  it('a handle taken before a move writes to the new bucket after it (async resolver)', async () => {
    let acmeMoved = false;
    let paused = false;
    const s3 = scopedS3(f.raw, {
      bucket: f.bucket,
      placement: async (t): Promise<S3Placement> => {
        await new Promise((r) => setImmediate(r));
        if (paused && t.id === 'acme') throw new TenantScopeError('PLACEMENT_PAUSED', 'acme is being moved');
        return t.id === 'acme' && acmeMoved
          ? { tier: 'dedicated', bucket: own, prefix: 'tenants/acme/' }
          : { tier: 'shared', bucket: f.bucket, prefix: `tenants/${t.id}/` };
      },
    });
    const acme = s3.forTenant(f.acme);
    const globex = s3.forTenant(f.globex);
    await acme.put('before.txt', 'a');
    await globex.put('g.txt', 'g');
    paused = true;
    expect(await codeOf(() => acme.put('paused.txt', 'p'))).toBe('PLACEMENT_PAUSED');
    await globex.put('g2.txt', 'g');
    acmeMoved = true;
    paused = false;
    await acme.put('after.txt', 'b');
    expect((await acme.list()).objects.map((o) => o.key)).toEqual(['after.txt']);
    expect(await keysIn(own)).toEqual(['tenants/acme/after.txt']);
    expect(await f.allKeys()).toEqual(['tenants/acme/before.txt', 'tenants/globex/g.txt', 'tenants/globex/g2.txt']);
    expect(await s3.resolvePlacement(f.acme)).toMatchObject({ tier: 'dedicated', bucket: own });
    expect(() => s3.placementOf(f.acme)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it("an async resolver's bad placement fails closed on the operation; nothing is written", async () => {
    const s3 = scopedS3(f.raw, {
      bucket: f.bucket,
      placement: async () => ({ tier: 'shared', bucket: f.bucket, prefix: 'no-slash' }),
    });
    const before = await f.allKeys();
    expect(await codeOf(() => s3.forTenant(f.acme).put('x.txt', 'x'))).toBe('INVALID_CONFIG');
    const rejecting = scopedS3(f.raw, { bucket: f.bucket, placement: () => Promise.reject(new Error('down')) });
    expect(await codeOf(() => rejecting.forTenant(f.acme).put('x.txt', 'x'))).toBe('UNAVAILABLE');
    expect(await f.allKeys()).toEqual(before);
  });
});
