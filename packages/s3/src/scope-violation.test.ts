/**
 * Defence in depth that a correct server never triggers: if a server (or a proxy) hands back a key
 * outside the tenant prefix, the scoped client refuses it instead of passing it on. A stub client
 * stands in for such a misbehaving server; everything else in this package runs against real S3.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createTestIssuer } from '@tenantscope/testkit';
import { describe, expect, it } from 'vitest';
import { scopedS3 } from './client.ts';
import { codeOf } from './test-support.ts';

function stub(response: unknown): S3Client {
  return { send: async () => response } as unknown as S3Client;
}

describe('keys from the server outside the prefix', () => {
  it('list refuses a foreign key in Contents or CommonPrefixes', async () => {
    const acme = await (await createTestIssuer()).tenant('acme');
    const s1 = scopedS3(stub({ Contents: [{ Key: 'tenants/globex/x', Size: 1 }] }), { bucket: 'bkt' });
    expect(await codeOf(() => s1.forTenant(acme).list())).toBe('S3_SCOPE_VIOLATION');
    const s2 = scopedS3(stub({ CommonPrefixes: [{ Prefix: 'tenants/acme2/' }] }), { bucket: 'bkt' });
    expect(await codeOf(() => s2.forTenant(acme).list({ delimiter: '/' }))).toBe('S3_SCOPE_VIOLATION');
  });

  it('deleteMany refuses a foreign key in the server report', async () => {
    const acme = await (await createTestIssuer()).tenant('acme');
    const s = scopedS3(stub({ Deleted: [{ Key: 'tenants/globex/x' }] }), { bucket: 'bkt' });
    expect(await codeOf(() => s.forTenant(acme).deleteMany(['x']))).toBe('S3_SCOPE_VIOLATION');
  });
});
