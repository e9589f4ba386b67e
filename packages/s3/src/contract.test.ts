/** The shared adapter contract on S3: the guarded per-tenant handle, `tenantData(tenant)`, the deprecated names. */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createTestIssuer } from '@tenantscope/testkit';
import { testAdapter } from '@tenantscope/testkit/adapter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExportedObject, S3_ERROR_CODES, S3_ERROR_STATUS, s3Error, TenantData, TenantS3 } from './index.ts';
import { type S3Fixture, s3Fixture } from './test-support.ts';

let f: S3Fixture;
beforeAll(async () => {
  f = await s3Fixture('contract');
});
afterAll(async () => f?.cleanup());

async function text(body: AsyncIterable<Uint8Array> | undefined): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body ?? []) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

testAdapter<TenantS3, ExportedObject>('s3', async () => {
  const issuer = await createTestIssuer();
  return {
    adapter: f.s3,
    tenants: [await issuer.tenant('hooli'), await issuer.tenant('umbrella')],
    put: async (files, key, value) => {
      await files.put(key, value);
    },
    get: async (files, key) => ((await files.exists(key)) ? files.getText(key) : undefined),
    list: async (files) => (await files.list()).objects.map((o) => o.key),
    remove: (files, key) => files.delete(key),
    raw: async () => {
      const out = await f.raw.send(new ListObjectsV2Command({ Bucket: f.bucket, Prefix: 'tenants/' }));
      return Promise.all(
        (out.Contents ?? []).map(async (o) => {
          const [, tenant = '', ...rest] = String(o.Key).split('/');
          const got = await f.raw.send(new GetObjectCommand({ Bucket: f.bucket, Key: o.Key }));
          return { tenant, key: rest.join('/'), value: await text(got.Body as AsyncIterable<Uint8Array>) };
        }),
      );
    },
    itemKey: (o) => o.key,
    itemValue: (o) => text(o.body),
    // tenantData(tenantId: string) is the deprecated operator form the CLI still uses
    tenantDataTakesIdString: true,
  };
});

describe('TenantS3', () => {
  it('cannot be built outside forTenant: a hand-made scope for another tenant is refused with NOT_A_TENANT', async () => {
    const scope = {
      tenantId: 'globex',
      client: f.raw,
      bucket: f.bucket,
      prefix: 'tenants/globex/',
      prefixBytes: 15,
      signal: undefined,
      settings: {},
    };
    const build = (...args: unknown[]) => new (TenantS3 as unknown as new (...a: unknown[]) => TenantS3)(...args);
    for (const args of [[scope], [Symbol('tenantscope.s3.tenant-client'), scope], [undefined, scope]]) {
      let code = 'NO_ERROR';
      try {
        build(...args);
      } catch (err) {
        code = (err as { code?: string }).code ?? 'untyped';
      }
      expect(code).toBe('NOT_A_TENANT');
    }
    await f.s3.forTenant(f.globex).put('secret.txt', 'globex only');
    expect(await f.s3.forTenant(f.acme).exists('secret.txt')).toBe(false);
  });
});

describe('tenantData(tenant)', () => {
  it('counts, exports and deletes one verified tenant only; a tenant id string still gives the deprecated TenantData', async () => {
    const acme = f.s3.forTenant(f.acme);
    await acme.put('d/1.txt', 'one');
    await acme.put('d/2.txt', 'two!');
    await f.s3.forTenant(f.globex).put('keep.txt', 'globex');
    const data = f.s3.tenantData(f.acme);
    expect(data.store).toBe('s3');
    expect(await data.count()).toEqual({ store: 's3', total: 2, parts: { objects: 2, bytes: 7 } });
    const got: Record<string, string> = {};
    for await (const o of data.export()) {
      const chunks: Buffer[] = [];
      for await (const c of o.body) chunks.push(Buffer.from(c));
      got[o.key] = Buffer.concat(chunks).toString('utf8');
    }
    expect(got).toEqual({ 'd/1.txt': 'one', 'd/2.txt': 'two!' });
    const legacy = f.s3.tenantData('acme');
    expect(legacy).toBeInstanceOf(TenantData);
    expect(await legacy.count()).toEqual({ objects: 2, bytes: 7 });
    expect(await data.delete()).toEqual({
      before: { store: 's3', total: 2, parts: { objects: 2, bytes: 7 } },
      after: { store: 's3', total: 0, parts: { objects: 0, bytes: 0 } },
    });
    expect((await f.allKeys()).filter((k) => k.startsWith('tenants/globex/'))).toContain('tenants/globex/keep.txt');
    let code = 'NO_ERROR';
    try {
      f.s3.tenantData({ id: 'acme' } as never);
    } catch (err) {
      code = (err as { code?: string }).code ?? 'untyped';
    }
    expect(code).toBe('NOT_A_TENANT');
  });
});

describe('errors', () => {
  it('S3_ERROR_CODES is the table s3Error uses; S3_ERROR_STATUS is the same table (deprecated alias)', () => {
    expect(S3_ERROR_STATUS).toBe(S3_ERROR_CODES);
    const e = s3Error('S3_NOT_FOUND', 'no such object');
    expect([e.code, e.status]).toEqual(['S3_NOT_FOUND', 404]);
  });
});
