import { createHash, createHmac, generateKeyPairSync } from 'node:crypto';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryRevocationStore } from './revocation.ts';
import { isTenant } from './tenant.ts';
import { createVerifier, type TokenVerifier } from './verifier.ts';

const ISS = 'https://issuer.test';
const AUD = 'http://localhost:3000/mcp';
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let jwks: { keys: Record<string, unknown>[] };
let spkiPem: string;
let verifier: TokenVerifier;
const revocations = new MemoryRevocationStore();

async function sign(payload: Record<string, unknown>, header: Record<string, unknown> = {}, key = privateKey) {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: 'k1', ...header }).sign(key);
}
function claims(over: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  const c: Record<string, unknown> = {
    iss: ISS,
    aud: AUD,
    sub: 'agent-1',
    tenant_id: 'acme',
    iat: now,
    exp: now + 600,
    jti: `j-${Math.random()}`,
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return c;
}
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ACCEPTED';
  } catch (e) {
    return (e as { code: string }).code;
  }
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] };
  spkiPem = await exportSPKI(pair.publicKey);
  verifier = await createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: jwks as never }, revocations });
});

describe('token verifier corpus', () => {
  it('accepts a good token and returns a branded Tenant', async () => {
    const t = await verifier.verify(
      await sign(claims({ allowed_tools: ['whoami', 'query_*'], resource_prefix: 'acme/' })),
    );
    expect(isTenant(t)).toBe(true);
    expect(t.id).toBe('acme');
    expect(t.subject).toBe('agent-1');
    expect(t.allowedTools).toEqual(['whoami', 'query_*']);
    expect(t.resourcePrefix).toBe('acme/');
    expect(isTenant({ ...t })).toBe(false);
  });

  it('refuses alg none', async () => {
    const h = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const p = base64url.encode(JSON.stringify(claims()));
    expect(await code(verifier.verify(`${h}.${p}.`))).toBe('AUTH_ALGORITHM');
  });

  it('refuses HS256 signed with the public key (alg confusion)', async () => {
    const h = base64url.encode(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'k1' }));
    const p = base64url.encode(JSON.stringify(claims()));
    const sig = createHmac('sha256', spkiPem).update(`${h}.${p}`).digest('base64url');
    expect(await code(verifier.verify(`${h}.${p}.${sig}`))).toBe('AUTH_ALGORITHM');
  });

  it('refuses a token signed by a wrong key with a known kid', async () => {
    const other = await generateKeyPair('ES256');
    expect(await code(verifier.verify(await sign(claims(), {}, other.privateKey)))).toBe('AUTH_SIGNATURE');
  });

  it('refuses a tampered payload', async () => {
    const good = await sign(claims());
    const [h, , s] = good.split('.');
    const p = base64url.encode(JSON.stringify(claims({ tenant_id: 'globex' })));
    expect(await code(verifier.verify(`${h}.${p}.${s}`))).toBe('AUTH_SIGNATURE');
  });

  it('refuses an unknown kid', async () => {
    expect(await code(verifier.verify(await sign(claims(), { kid: 'nope' })))).toBe('AUTH_KEY_UNKNOWN');
  });

  it('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await code(verifier.verify(await sign(claims({ iat: now - 1200, exp: now - 600 }))))).toBe('AUTH_EXPIRED');
  });

  it('refuses nbf in the future beyond the tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await code(verifier.verify(await sign(claims({ nbf: now + 300 }))))).toBe('AUTH_NOT_YET_VALID');
  });

  it('refuses a lifetime over the cap', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await code(verifier.verify(await sign(claims({ iat: now, exp: now + 7200 }))))).toBe('AUTH_LIFETIME');
  });

  it('refuses a wrong audience', async () => {
    expect(await code(verifier.verify(await sign(claims({ aud: 'http://other.example/mcp' }))))).toBe('AUTH_AUDIENCE');
  });

  it('refuses a wrong issuer', async () => {
    expect(await code(verifier.verify(await sign(claims({ iss: 'https://evil.test' }))))).toBe('AUTH_ISSUER');
  });

  it('refuses a missing tenant claim', async () => {
    expect(await code(verifier.verify(await sign(claims({ tenant_id: undefined }))))).toBe('AUTH_CLAIM_MISSING');
  });

  it('refuses bad tenant syntax', async () => {
    for (const bad of ['Acme', '../globex', 'acme globex', '', 'a'.repeat(64), 'acme\u0000', 42]) {
      expect(await code(verifier.verify(await sign(claims({ tenant_id: bad }))))).toBe('AUTH_TENANT_INVALID');
    }
  });

  it('refuses an oversize token before parsing it', async () => {
    const big = await sign(claims({ pad: 'x'.repeat(9000) }));
    expect(await code(verifier.verify(big))).toBe('AUTH_TOO_LARGE');
    expect(await code(verifier.verify(`${'a'.repeat(9000)}.b.c`))).toBe('AUTH_TOO_LARGE');
  });

  it('refuses a missing sub, exp or iat', async () => {
    for (const k of ['sub', 'exp', 'iat']) {
      expect(await code(verifier.verify(await sign(claims({ [k]: undefined }))))).toBe('AUTH_CLAIM_MISSING');
    }
  });

  it('refuses malformed tokens and a bad allowed_tools claim', async () => {
    expect(await code(verifier.verify('not-a-jwt'))).toBe('AUTH_MALFORMED');
    expect(await code(verifier.verify(''))).toBe('AUTH_MISSING');
    expect(await code(verifier.verify(await sign(claims({ allowed_tools: 'whoami' }))))).toBe('AUTH_CLAIM_INVALID');
  });

  it('refuses a revoked jti and a halted tenant', async () => {
    const c = claims();
    const token = await sign(c);
    expect(await code(verifier.verify(token))).toBe('ACCEPTED');
    await revocations.revokeToken(c.jti as string, new Date(Date.now() + 600_000));
    expect(await code(verifier.verify(token))).toBe('AUTH_REVOKED');
    await revocations.haltTenant('acme', 'test');
    expect(await code(verifier.verify(await sign(claims())))).toBe('TENANT_HALTED');
    await revocations.resumeTenant('acme');
    expect(await code(verifier.verify(await sign(claims())))).toBe('ACCEPTED');
  });
});

describe('verifier configuration', () => {
  it('refuses alg none and HS/asymmetric mixes in config', async () => {
    await expect(
      createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: jwks as never }, algorithms: ['none'] }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await expect(
      createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: jwks as never }, algorithms: ['HS256'] }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await expect(
      createVerifier({ issuer: ISS, audience: AUD, keys: { hmacSecret: 'x'.repeat(40) } as never }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
  });

  it('refuses a JWKS with a symmetric key', async () => {
    const oct = { kty: 'oct', k: base64url.encode(createHash('sha256').update('s').digest()), kid: 'h' };
    await expect(
      createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: { keys: [oct] } as never } }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
  });

  it('verifies with a PEM public key, and HS256 only when enabled', async () => {
    const v = await createVerifier({ issuer: ISS, audience: AUD, keys: { publicKey: spkiPem, algorithm: 'ES256' } });
    expect((await v.verify(await sign(claims()))).id).toBe('acme');
    const secret = 'k'.repeat(48);
    const hv = await createVerifier({ issuer: ISS, audience: AUD, keys: { hmacSecret: secret, allowHs256: true } });
    const hs = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
    expect((await hv.verify(hs)).id).toBe('acme');
    // An ES256 token is refused by the HMAC verifier, and vice versa.
    expect(await code(hv.verify(await sign(claims())))).toBe('AUTH_ALGORITHM');
    expect(await code(v.verify(hs))).toBe('AUTH_ALGORITHM');
  });

  it('accepts an RS256 key from a JWKS', async () => {
    const { privateKey: rsPriv, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'r1', alg: 'RS256' };
    const v = await createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: { keys: [jwk] } as never } });
    const t = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'r1' }).sign(rsPriv);
    expect((await v.verify(t)).id).toBe('acme');
  });
});

describe('verification cache', () => {
  it('still refuses a cached token once it expires, is revoked, or its tenant is halted', async () => {
    let clock = Date.now();
    const store = new MemoryRevocationStore();
    const v = await createVerifier({
      issuer: ISS,
      audience: AUD,
      keys: { jwks: jwks as never },
      revocations: store,
      clockToleranceSeconds: 0,
      now: () => clock,
    });
    const now = Math.floor(clock / 1000);
    const c = claims({ iat: now, exp: now + 60 });
    const token = await sign(c);
    expect(await code(v.verify(token))).toBe('ACCEPTED');
    expect(await code(v.verify(token))).toBe('ACCEPTED'); // from the cache
    await store.haltTenant('acme', 'drill');
    expect(await code(v.verify(token))).toBe('TENANT_HALTED');
    await store.resumeTenant('acme');
    await store.revokeToken(c.jti as string, new Date(clock + 120_000));
    expect(await code(v.verify(token))).toBe('AUTH_REVOKED');
    const t2 = await sign(claims({ iat: now, exp: now + 60 }));
    expect(await code(v.verify(t2))).toBe('ACCEPTED');
    clock += 61_000;
    expect(await code(v.verify(t2))).toBe('AUTH_EXPIRED');
  });
});
