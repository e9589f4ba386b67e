/** Hostile tokens, issue 11 "Tokens": audience lists and duplicate member names in the signed JSON. */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { exportJWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, type TokenVerifier } from './verifier.ts';

const ISS = 'https://issuer.test';
const AUD = 'http://localhost:3000/mcp';
let key: KeyObject;
let strict: TokenVerifier;
let lenient: TokenVerifier;

/** Signs raw JSON text exactly as given (JSON.stringify could never produce a duplicate member). */
function signRaw(payloadJson: string, headerJson = '{"alg":"ES256","kid":"k1"}'): string {
  const input = `${Buffer.from(headerJson).toString('base64url')}.${Buffer.from(payloadJson).toString('base64url')}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${input}.${sig}`;
}
/** The good claims as JSON text, without the closing brace, so a test can append members. */
function open(aud: unknown = AUD): string {
  const now = Math.floor(Date.now() / 1000);
  const c = { iss: ISS, aud, sub: 'agent-1', tenant_id: 'acme', iat: now, exp: now + 600 };
  return JSON.stringify(c).slice(0, -1);
}
async function code(v: TokenVerifier, token: string): Promise<string> {
  try {
    const t = await v.verify(token);
    return `ACCEPTED:${t.id}`;
  } catch (e) {
    return (e as { code: string }).code;
  }
}

beforeAll(async () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  key = pair.privateKey;
  const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] };
  strict = await createVerifier({ issuer: ISS, audience: AUD, keys: { jwks: jwks as never }, cacheSize: 0 });
  lenient = await createVerifier({
    issuer: ISS,
    audience: AUD,
    keys: { jwks: jwks as never },
    cacheSize: 0,
    allowAudienceList: true,
  });
});

describe('audience (RFC 8707: one token, one resource)', () => {
  it('accepts aud as this server, alone or as a one-element list', async () => {
    expect(await code(strict, signRaw(`${open()}}`))).toBe('ACCEPTED:acme');
    expect(await code(strict, signRaw(`${open([AUD])}}`))).toBe('ACCEPTED:acme');
  });

  it('refuses an aud list that names other resources too, unless allowAudienceList', async () => {
    const lists = [
      [AUD, 'https://other.example/mcp'],
      ['https://other.example/mcp', AUD],
      [AUD, AUD],
      [AUD, 'https://a.example', 'https://b.example'],
    ];
    for (const aud of lists) {
      expect(await code(strict, signRaw(`${open(aud)}}`))).toBe('AUTH_AUDIENCE');
      expect(await code(lenient, signRaw(`${open(aud)}}`))).toBe('ACCEPTED:acme');
    }
    // A list without us is refused either way.
    expect(await code(lenient, signRaw(`${open(['https://other.example/mcp'])}}`))).toBe('AUTH_AUDIENCE');
    expect(await code(strict, signRaw(`${open([])}}`))).toBe('AUTH_AUDIENCE');
  });
});

describe('duplicate member names in the signed JSON', () => {
  const cases: [string, string][] = [
    ['a second tenant_id (last would win)', `${open()},"tenant_id":"globex"}`],
    ['a second tenant_id with the same value', `${open()},"tenant_id":"acme"}`],
    ['an escaped duplicate (\\u005f)', `${open()},"tenant\\u005fid":"globex"}`],
    [
      'a fully escaped duplicate',
      `${open()},"\\u0074\\u0065\\u006e\\u0061\\u006e\\u0074\\u005f\\u0069\\u0064":"globex"}`,
    ],
    ['a second sub', `${open()},"sub":"agent-2"}`],
    ['a second aud', `${open()},"aud":"https://other.example/mcp"}`],
    ['a second exp', `${open()},"exp":9999999999}`],
    ['a duplicate inside a nested object', `${open()},"ctx":{"a":1,"b":{"x":1,"x":2}}}`],
    ['a duplicate inside an object in an array', `${open()},"allowed_tools_meta":[{"t":"a"},{"t":"a","t":"b"}]}`],
    ['a duplicate __proto__', `${open()},"__proto__":{},"__proto__":{}}`],
  ];
  for (const [name, json] of cases) {
    it(`refuses ${name}`, async () => {
      expect(JSON.parse(json)).toBeTypeOf('object'); // valid JSON for JSON.parse, so jose alone would accept it
      expect(await code(strict, signRaw(json))).toBe('AUTH_DUPLICATE_CLAIM');
      expect(await code(lenient, signRaw(json))).toBe('AUTH_DUPLICATE_CLAIM');
    });
  }

  it('refuses a duplicate member in the protected header', async () => {
    expect(await code(strict, signRaw(`${open()}}`, '{"alg":"ES256","kid":"k1","kid":"k2"}'))).toBe(
      'AUTH_DUPLICATE_CLAIM',
    );
  });

  it('accepts the same name in different objects (not a duplicate)', async () => {
    expect(await code(strict, signRaw(`${open()},"a":{"tenant_id":"x"},"b":[{"tenant_id":"y"}]}`))).toBe(
      'ACCEPTED:acme',
    );
  });

  it('refuses payload text that is not strict JSON, and deep nesting without a crash', async () => {
    expect(await code(strict, signRaw(`${open()},}`))).toBe('AUTH_MALFORMED');
    const deep = `${open()},"d":${'['.repeat(2000)}${']'.repeat(2000)}}`;
    expect(await code(strict, signRaw(deep))).toBe('ACCEPTED:acme');
    const deepDup = `${open()},"d":${'[{"k":'.repeat(500)}{"z":1,"z":2}${'}]'.repeat(500)}}`;
    expect(await code(strict, signRaw(deepDup))).toBe('AUTH_DUPLICATE_CLAIM');
  });
});
