import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { codeOf, type S3Fixture, s3Fixture } from './test-support.ts';

const conn = inject('s3');
const noSigCheck = !conn.checksSignatures;
if (noSigCheck) {
  console.log(
    `[s3 presign] SKIPPING the 403 checks: ${conn.server} is the no-setup fallback and does not verify SigV4 signatures; set S3_ENDPOINT to a real server (CI uses Ceph RGW)`,
  );
}

let f: S3Fixture;
beforeAll(async () => {
  f = await s3Fixture('presign');
  await f.s3.forTenant(f.globex).put('secret/plan.txt', 'globex secret plan');
  await f.s3.forTenant(f.acme).put('shared/report.txt', 'acme report');
});
afterAll(async () => f?.cleanup());

/** A's URL with its path pointed at another key, everything else (signature, query) kept. */
function retarget(url: string, fromKey: string, toKey: string): string {
  const u = new URL(url);
  expect(u.pathname).toContain(fromKey);
  u.pathname = u.pathname.replace(fromKey, toKey);
  return u.toString();
}

describe('presigned URLs', () => {
  it('a presigned GET reads the tenant object; default expiry is 5 minutes', async () => {
    const url = await f.s3.forTenant(f.acme).presignGet('shared/report.txt');
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('300');
    expect(new URL(url).pathname).toBe(`/${f.bucket}/tenants/acme/shared/report.txt`);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('acme report');
  });

  it('expiry is capped', async () => {
    const a = f.s3.forTenant(f.acme);
    expect(await codeOf(() => a.presignGet('shared/report.txt', { expiresIn: 3601 }))).toBe('S3_PRESIGN_EXPIRY');
    expect(await codeOf(() => a.presignPut('shared/report.txt', { expiresIn: 604800 }))).toBe('S3_PRESIGN_EXPIRY');
    const url = await a.presignGet('shared/report.txt', { expiresIn: 3600 });
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('3600');
  });

  it('a presigned PUT writes inside the tenant', async () => {
    const url = await f.s3.forTenant(f.acme).presignPut('uploads/via-url.txt', { contentType: 'text/plain' });
    const res = await fetch(url, { method: 'PUT', body: 'uploaded', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
    expect(await f.s3.forTenant(f.acme).getText('uploads/via-url.txt')).toBe('uploaded');
    expect(await f.allKeys()).toContain('tenants/acme/uploads/via-url.txt');
  });

  it.skipIf(noSigCheck)("A's GET URL edited to point at B's key gets 403 from the server", async () => {
    const url = await f.s3.forTenant(f.acme).presignGet('shared/report.txt');
    const edited = retarget(url, 'tenants/acme/shared/report.txt', 'tenants/globex/secret/plan.txt');
    const res = await fetch(edited);
    const body = await res.text();
    expect(res.status).toBe(403);
    expect(body).not.toContain('globex secret plan');
    // Same-length edit of the tenant segment only.
    const edited2 = retarget(url, 'tenants/acme/', 'tenants/globex/');
    expect((await fetch(edited2)).status).toBe(403);
  });

  it.skipIf(noSigCheck)("A's PUT URL edited to point at B's key gets 403 and B's object is unchanged", async () => {
    const url = await f.s3.forTenant(f.acme).presignPut('uploads/mine.txt');
    const edited = retarget(url, 'tenants/acme/uploads/mine.txt', 'tenants/globex/secret/plan.txt');
    const res = await fetch(edited, { method: 'PUT', body: 'overwritten by acme' });
    expect(res.status).toBe(403);
    expect(await f.s3.forTenant(f.globex).getText('secret/plan.txt')).toBe('globex secret plan');
  });

  it.skipIf(noSigCheck)('an expired URL gets 403', async () => {
    const url = await f.s3.forTenant(f.acme).presignGet('shared/report.txt', { expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2500));
    const res = await fetch(url);
    await res.text();
    expect(res.status).toBe(403);
  });

  it.skipIf(noSigCheck)('an edited expiry gets 403', async () => {
    const url = new URL(await f.s3.forTenant(f.acme).presignGet('shared/report.txt', { expiresIn: 60 }));
    url.searchParams.set('X-Amz-Expires', '604800');
    const res = await fetch(url);
    await res.text();
    expect(res.status).toBe(403);
  });
});
