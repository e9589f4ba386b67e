import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVerifier } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const AUD = 'http://localhost:3000/mcp';
const servers: { close(): void }[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ACCEPTED';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

describe('JWKS from a URL', () => {
  it('caches keys, follows a rotation to a new kid, and drops the retired key', async () => {
    const k1 = await createTestIssuer({ audience: AUD, kid: 'k1' });
    const k2 = await createTestIssuer({ audience: AUD, kid: 'k2' });
    let served = k1.jwks;
    let fetches = 0;
    const http = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(served));
    });
    servers.push(http);
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/jwks.json`;
    const v = await createVerifier({
      issuer: k1.issuer,
      audience: AUD,
      keys: { jwksUrl: url, cooldownMs: 0 },
      cacheSize: 0,
    });
    expect((await v.verify(await k1.mint({ tenant: 'acme' }))).id).toBe('acme');
    expect((await v.verify(await k1.mint({ tenant: 'acme' }))).id).toBe('acme');
    expect(fetches).toBe(1); // cached
    served = k2.jwks; // rotation
    expect((await v.verify(await k2.mint({ tenant: 'globex' }))).id).toBe('globex');
    expect(fetches).toBe(2);
    expect(await code(v.verify(await k1.mint({ tenant: 'acme' })))).toBe('AUTH_KEY_UNKNOWN');
  });

  it('an unreachable JWKS fails closed', async () => {
    const k = await createTestIssuer({ audience: AUD });
    const v = await createVerifier({
      issuer: k.issuer,
      audience: AUD,
      keys: { jwksUrl: 'http://127.0.0.1:9/jwks.json', timeoutMs: 500 },
    });
    expect(await code(v.verify(await k.mint({ tenant: 'acme' })))).toBe('AUTH_KEYS_UNAVAILABLE');
  });
});

describe('JWKS from a file', () => {
  it('verifies with the keys in the file and refuses others', async () => {
    const k = await createTestIssuer({ audience: AUD });
    const other = await createTestIssuer({ audience: AUD, kid: k.kid });
    const dir = await mkdtemp(join(tmpdir(), 'jwks-'));
    const file = join(dir, 'jwks.json');
    await writeFile(file, JSON.stringify(k.jwks));
    const v = await createVerifier({ issuer: k.issuer, audience: AUD, keys: { jwksFile: file } });
    expect((await v.verify(await k.mint({ tenant: 'acme' }))).id).toBe('acme');
    expect(await code(v.verify(await other.mint({ tenant: 'acme' })))).toBe('AUTH_SIGNATURE');
    await expect(
      createVerifier({ issuer: k.issuer, audience: AUD, keys: { jwksFile: join(dir, 'missing.json') } }),
    ).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
    });
  });
});
