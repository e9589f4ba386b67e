/**
 * The S3 isolation corpus: every tier runs it (scoped.test.ts on the shared bucket, dedicated.test.ts
 * with dedicated buckets and vended credentials). Keys keep the `tenants/<id>/` prefix on every tier,
 * and `f.allKeys()` lists every bucket of the fixture, so the same assertions hold on each.
 */
import { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopedS3 } from './client.ts';
import { codeOf, type S3Fixture } from './test-support.ts';

/** Registers the corpus; returns the fixture getter (valid inside tests) for tier-specific tests. */
export function scopedSuite(label: string, make: () => Promise<S3Fixture>): () => S3Fixture {
  let f: S3Fixture;
  beforeAll(async () => {
    f = await make();
    console.log(`[s3 ${label}] server: ${f.conn.server} at ${f.conn.endpoint}, bucket ${f.bucket}`);
  });
  afterAll(async () => f?.cleanup());

  describe('scopedS3 basics', () => {
    it('puts strings, bytes and streams under the tenant prefix and reads them back', async () => {
      const a = f.s3.forTenant(f.acme);
      await a.put('docs/hello.txt', 'hello acme');
      await a.put('docs/bytes.bin', new Uint8Array([1, 2, 3, 255]));
      await a.put('docs/stream.txt', Readable.from([Buffer.from('chunk1-'), Buffer.from('chunk2')]));
      await a.put('docs/web.txt', new Blob(['web stream']).stream());
      expect(await a.getText('docs/hello.txt')).toBe('hello acme');
      expect([...(await a.getBytes('docs/bytes.bin'))]).toEqual([1, 2, 3, 255]);
      expect(await a.getText('docs/stream.txt')).toBe('chunk1-chunk2');
      expect(await a.getText('docs/web.txt')).toBe('web stream');
      const head = await a.head('docs/hello.txt');
      expect(head.size).toBe(10);
      expect(head.contentType).toBe('text/plain; charset=utf-8');
      const keys = await f.allKeys();
      for (const k of ['docs/hello.txt', 'docs/bytes.bin', 'docs/stream.txt', 'docs/web.txt']) {
        expect(keys).toContain(`tenants/acme/${k}`);
      }
      expect(keys.every((k) => k.startsWith('tenants/acme/'))).toBe(true);
    });

    it('refuses anything but a verified Tenant', async () => {
      expect(await codeOf(() => f.s3.forTenant('acme' as never))).toBe('NOT_A_TENANT');
      expect(await codeOf(() => f.s3.forTenant({ ...f.acme } as never))).toBe('NOT_A_TENANT');
      expect(await codeOf(() => f.s3.provider().forCall({ tenant: { id: 'acme' } } as never))).toBe('NOT_A_TENANT');
    });

    it('prefix always ends in "/": t1 never sees t10', async () => {
      const issuer = await (await import('@tenantscope/testkit')).createTestIssuer();
      const t1 = await issuer.tenant('t1');
      const t10 = await issuer.tenant('t10');
      const s3 = scopedS3(f.raw, { bucket: f.bucket, prefix: (t) => `p/${t.id}/` });
      await s3.forTenant(t10).put('x.txt', 'ten');
      const page = await s3.forTenant(t1).list();
      expect(page.objects).toEqual([]);
      expect(await codeOf(() => s3.forTenant(t1).get('0/x.txt'))).toBe('S3_NOT_FOUND');
      expect(() => scopedS3(f.raw, { bucket: f.bucket, prefix: (t) => `p/${t.id}` }).forTenant(t1)).toThrow(
        /ending in "\/"/,
      );
      expect(() => scopedS3(f.raw, { bucket: f.bucket, prefix: () => `p/../` }).forTenant(t1)).toThrow(/tenant prefix/);
    });

    it('lists with pagination, relative keys and folders', async () => {
      const a = f.s3.forTenant(f.globex);
      for (let i = 0; i < 7; i++) await a.put(`list/item-${i}.txt`, `v${i}`);
      await a.put('list/sub/deep.txt', 'deep');
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await a.list({ prefix: 'list/', limit: 3, continuationToken: token });
        seen.push(...page.objects.map((o) => o.key));
        token = page.nextContinuationToken;
        pages++;
      } while (token);
      expect(pages).toBe(3);
      expect(seen.sort()).toEqual(
        [...Array.from({ length: 7 }, (_, i) => `list/item-${i}.txt`), 'list/sub/deep.txt'].sort(),
      );
      const folders = await a.list({ prefix: 'list/', delimiter: '/' });
      expect(folders.folders).toEqual(['list/sub/']);
      expect(folders.objects).toHaveLength(7);
      const all: string[] = [];
      for await (const o of a.iterate({ prefix: 'list/', limit: 2 })) all.push(o.key);
      expect(all).toHaveLength(8);
    });

    it('copy, delete and deleteMany inside the tenant', async () => {
      const a = f.s3.forTenant(f.acme);
      await a.put('cp/src.txt', 'copy me');
      await a.copy('cp/src.txt', 'cp/dst.txt');
      expect(await a.getText('cp/dst.txt')).toBe('copy me');
      await a.delete('cp/src.txt');
      expect(await a.exists('cp/src.txt')).toBe(false);
      await a.put('cp/a', '1');
      await a.put('cp/b', '2');
      const r = await a.deleteMany(['cp/a', 'cp/b', 'cp/dst.txt', 'cp/a']);
      expect(r.deleted.sort()).toEqual(['cp/a', 'cp/b', 'cp/dst.txt']);
      expect(r.errors).toEqual([]);
      expect((await a.list({ prefix: 'cp/' })).objects).toEqual([]);
    });

    it('copies keys with literal percent sequences to exactly those keys', async () => {
      const a = f.s3.forTenant(f.acme);
      await a.put('pct/report%20final.txt', 'percent');
      await a.copy('pct/report%20final.txt', 'pct/100%.txt');
      const keys = await f.allKeys();
      expect(keys).toContain('tenants/acme/pct/report%20final.txt');
      expect(keys).toContain('tenants/acme/pct/100%.txt');
      expect(keys).not.toContain('tenants/acme/pct/report final.txt');
      expect(await a.getText('pct/100%.txt')).toBe('percent');
    });
  });

  describe('cross-tenant', () => {
    beforeAll(async () => {
      await f.s3.forTenant(f.globex).put('secret/plan.txt', 'globex secret plan');
      await f.s3.forTenant(f.acme).put('mine/note.txt', 'acme note');
    });

    const foreignKeys = [
      'secret/plan.txt',
      '../globex/secret/plan.txt',
      '/tenants/globex/secret/plan.txt',
      'tenants/globex/secret/plan.txt',
      '..%2fglobex%2fsecret%2fplan.txt',
      '%2e%2e/globex/secret/plan.txt',
      '..\\globex\\secret\\plan.txt',
    ];

    it('get and head of a globex object by any key acme can type: refused or not found', async () => {
      const a = f.s3.forTenant(f.acme);
      for (const k of foreignKeys) {
        const get = await codeOf(() => a.get(k));
        const head = await codeOf(() => a.head(k));
        expect(['S3_KEY_INVALID', 'S3_NOT_FOUND'], `get ${k}`).toContain(get);
        expect(['S3_KEY_INVALID', 'S3_NOT_FOUND'], `head ${k}`).toContain(head);
      }
      expect(await f.s3.forTenant(f.globex).getText('secret/plan.txt')).toBe('globex secret plan');
    });

    it("error messages never carry the other tenant's data", async () => {
      const a = f.s3.forTenant(f.acme);
      for (const k of foreignKeys) {
        try {
          await a.get(k);
        } catch (err) {
          expect(String((err as Error).message)).not.toMatch(/globex secret plan|tenants\/globex/);
        }
      }
    });

    it('copy in both directions stays inside the caller', async () => {
      const a = f.s3.forTenant(f.acme);
      const g = f.s3.forTenant(f.globex);
      // acme tries to copy globex's object into acme: the source resolves inside acme, so not found.
      expect(await codeOf(() => a.copy('secret/plan.txt', 'stolen.txt'))).toBe('S3_NOT_FOUND');
      expect(await codeOf(() => a.copy('../globex/secret/plan.txt', 'stolen.txt'))).toBe('S3_KEY_INVALID');
      // acme tries to copy its own object into globex: the destination resolves inside acme.
      expect(await codeOf(() => a.copy('mine/note.txt', '../globex/planted.txt'))).toBe('S3_KEY_INVALID');
      await a.copy('mine/note.txt', 'globex/planted.txt');
      expect(await codeOf(() => g.get('planted.txt'))).toBe('S3_NOT_FOUND');
      const keys = await f.allKeys();
      expect(keys).toContain('tenants/acme/globex/planted.txt');
      expect(keys.filter((k) => k.startsWith('tenants/globex/'))).not.toContain('tenants/globex/planted.txt');
      expect(keys).not.toContain('tenants/acme/stolen.txt');
    });

    it('delete of a globex key by acme deletes nothing of globex', async () => {
      const a = f.s3.forTenant(f.acme);
      await a.delete('secret/plan.txt'); // resolves to acme's own (absent) key
      expect(await codeOf(() => a.delete('../globex/secret/plan.txt'))).toBe('S3_KEY_INVALID');
      expect(await f.s3.forTenant(f.globex).getText('secret/plan.txt')).toBe('globex secret plan');
    });

    it('deleteMany with one foreign key deletes nothing at all', async () => {
      const a = f.s3.forTenant(f.acme);
      await a.put('dm/1.txt', '1');
      await a.put('dm/2.txt', '2');
      const before = await f.allKeys();
      const code = await codeOf(() => a.deleteMany(['dm/1.txt', '../globex/secret/plan.txt', 'dm/2.txt']));
      expect(code).toBe('S3_KEY_INVALID');
      expect((await f.allKeys()).sort()).toEqual(before.sort());
    });

    it('a continuation token from another tenant (or another listing) is refused', async () => {
      const g = f.s3.forTenant(f.globex);
      const a = f.s3.forTenant(f.acme);
      for (let i = 0; i < 3; i++) await a.put(`tok/${i}.txt`, 'x');
      const gPage = await g.list({ limit: 1 });
      expect(gPage.nextContinuationToken).toBeTruthy();
      expect(await codeOf(() => a.list({ limit: 1, continuationToken: gPage.nextContinuationToken }))).toBe(
        'S3_TOKEN_INVALID',
      );
      const aPage = await a.list({ prefix: 'tok/', limit: 1 });
      expect(
        await codeOf(() => a.list({ prefix: 'mine/', limit: 1, continuationToken: aPage.nextContinuationToken })),
      ).toBe('S3_TOKEN_INVALID');
      // A raw server token is not accepted either, nor a token sealed by another scopedS3 instance.
      const other = scopedS3(f.raw, { bucket: f.bucket }).forTenant(f.acme);
      expect(
        await codeOf(() => other.list({ prefix: 'tok/', limit: 1, continuationToken: aPage.nextContinuationToken })),
      ).toBe('S3_TOKEN_INVALID');
      expect(await codeOf(() => a.list({ continuationToken: 'not-a-token' }))).toBe('S3_TOKEN_INVALID');
      // The genuine token works.
      const next = await a.list({ prefix: 'tok/', limit: 1, continuationToken: aPage.nextContinuationToken });
      expect(next.objects).toHaveLength(1);
    });

    it("list never returns another tenant's keys", async () => {
      const a = f.s3.forTenant(f.acme);
      const keys: string[] = [];
      for await (const o of a.iterate()) keys.push(o.key);
      expect(keys.length).toBeGreaterThan(0);
      expect(keys).not.toContain('secret/plan.txt');
      expect(await codeOf(() => a.list({ prefix: '../' }))).toBe('S3_KEY_INVALID');
    });
  });

  describe('bad input: typed error and nothing written', () => {
    const cases: [string, () => Promise<unknown>][] = [];
    it('each case throws a typed error and the bucket is unchanged', async () => {
      const a = f.s3.forTenant(f.acme);
      cases.push(
        ['empty key', () => a.put('', 'x')],
        ['leading slash', () => a.put('/abs.txt', 'x')],
        ['dot segment', () => a.put('a/./b.txt', 'x')],
        ['dotdot segment', () => a.put('a/../b.txt', 'x')],
        ['empty segment', () => a.put('a//b.txt', 'x')],
        ['trailing slash', () => a.put('folder/', 'x')],
        ['backslash', () => a.put('a\\b.txt', 'x')],
        ['NUL', () => a.put('a\u0000b.txt', 'x')],
        ['newline', () => a.put('a\nb.txt', 'x')],
        ['lone surrogate', () => a.put('a\ud800b.txt', 'x')],
        ['too long', () => a.put('k'.repeat(1024), 'x')],
        ['encoded traversal', () => a.put('%2e%2e/x.txt', 'x')],
        ['non-string key', () => a.put(42 as never, 'x')],
        ['number body', () => a.put('ok-key.txt', 42 as never)],
        ['object body', () => a.put('ok-key.txt', { a: 1 } as never)],
        ['bad metadata', () => a.put('ok-key.txt', 'x', { metadata: { 'bad key': 'v' } })],
        ['bad content type', () => a.put('ok-key.txt', 'x', { contentType: 'text/\nplain' })],
        ['upload part too small', () => a.upload('ok-key.txt', 'x', { partSize: 1024 })],
        ['stream with bad key', () => a.put('../x', Readable.from(['x']))],
        ['copy bad dest', () => a.copy('mine/note.txt', 'a//b')],
        ['presign bad key', () => a.presignPut('../x')],
        ['presign too long', () => a.presignPut('ok-key.txt', { expiresIn: 7 * 24 * 3600 })],
        ['presign zero', () => a.presignGet('ok-key.txt', { expiresIn: 0 })],
        ['list limit', () => a.list({ limit: 5000 })],
      );
      const before = (await f.allKeys()).sort();
      for (const [label, fn] of cases) {
        const code = await codeOf(fn);
        expect(code, label).toMatch(/^(S3_KEY_INVALID|S3_BODY_INVALID|INVALID_ARGUMENT|S3_PRESIGN_EXPIRY)$/);
      }
      expect((await f.allKeys()).sort()).toEqual(before);
    });
  });

  describe('DSAR', () => {
    it('count, streamed export and delete-all, each verified by a recount, touch only one tenant', async () => {
      const issuer = await (await import('@tenantscope/testkit')).createTestIssuer();
      const initech = await issuer.tenant('initech');
      const i = f.s3.forTenant(initech);
      for (let n = 0; n < 5; n++) await i.put(`dsar/${n}.txt`, `initech ${n}`);
      const globexBefore = (await f.allKeys()).filter((k) => k.startsWith('tenants/globex/')).length;
      const data = f.s3.tenantData('initech');
      expect(await data.count()).toEqual({ objects: 5, bytes: 45 });
      const exported: Record<string, string> = {};
      const r = await data.export(async (o) => {
        const chunks: Buffer[] = [];
        for await (const c of o.body) chunks.push(Buffer.from(c));
        exported[o.key] = Buffer.concat(chunks).toString('utf8');
      });
      expect(r.objects).toBe(5);
      expect(r.recount).toEqual({ objects: 5, bytes: 45 });
      expect(exported['dsar/3.txt']).toBe('initech 3');
      const d = await data.deleteAll();
      expect(d).toEqual({ deleted: 5, recount: 0 });
      expect((await f.allKeys()).filter((k) => k.startsWith('tenants/initech/'))).toEqual([]);
      expect((await f.allKeys()).filter((k) => k.startsWith('tenants/globex/')).length).toBe(globexBefore);
      expect(await codeOf(() => f.s3.tenantData('../globex'))).toBe('INVALID_ARGUMENT');
    });

    it('export reports a mismatch when objects appear during the export', async () => {
      const issuer = await (await import('@tenantscope/testkit')).createTestIssuer();
      const hooli = await issuer.tenant('hooli');
      const h = f.s3.forTenant(hooli);
      await h.put('a.txt', 'a');
      const code = await codeOf(() =>
        f.s3.tenantData('hooli').export(async (o) => {
          o.body.resume();
          await h.put('late.txt', 'arrived during export');
        }),
      );
      expect(code).toBe('S3_DSAR_MISMATCH');
    });
  });

  describe('call cancellation', () => {
    it("the call's abort signal cancels the request and nothing is written", async () => {
      const ac = new AbortController();
      ac.abort();
      const a = f.s3.forTenant(f.acme, { signal: ac.signal });
      const before = (await f.allKeys()).sort();
      const code = await codeOf(() => a.put('aborted.txt', 'never'));
      expect(code).toBe('S3_REQUEST_FAILED');
      expect((await f.allKeys()).sort()).toEqual(before);
    });
  });

  describe('unscoped access is explicit', () => {
    it('the raw client is only reachable as unscopedClient', async () => {
      const a = f.s3.forTenant(f.acme) as unknown as Record<string, unknown>;
      expect(Object.keys(a)).toEqual([]);
      expect(JSON.stringify(a)).toBe('{"tenant_id":"acme"}');
      expect(f.s3.unscopedClient).toBe(f.raw);
      // The raw client can of course reach anything: that is why it is named so.
      await f.raw.send(new PutObjectCommand({ Bucket: f.bucket, Key: 'outside/raw.txt', Body: 'raw' }));
      const got = await f.raw.send(new GetObjectCommand({ Bucket: f.bucket, Key: 'outside/raw.txt' }));
      expect(await got.Body?.transformToString()).toBe('raw');
    });
  });
  return () => f;
}
