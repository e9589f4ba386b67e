import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  API_KEY_ISSUER,
  type ApiKeyRecord,
  type ApiKeyStore,
  apiKeyTokenId,
  createApiKey,
  hashApiKey,
  MemoryApiKeyAttemptLimiter,
  MemoryApiKeyStore,
  parseApiKey,
  revokeApiKey,
  withApiKeys,
} from './api-keys.ts';
import { effectiveTools } from './directory.ts';
import { TenantScopeError } from './errors.ts';
import { MemoryRevocationStore } from './revocation.ts';
import { isTenant } from './tenant.ts';
import type { TokenVerifier } from './verifier.ts';

// The real timingSafeEqual, watched: the test of the compare checks that it is what decides.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

/** A JWT verifier stand-in that refuses everything: any token reaching it is visible. */
const jwt: TokenVerifier & { seen: string[] } = {
  audience: 'http://localhost/mcp',
  issuers: ['https://issuer.test'],
  seen: [],
  async verify(token: string) {
    jwt.seen.push(token);
    throw new TenantScopeError('AUTH_MALFORMED', 'not a JWT');
  },
};

async function refusal(p: Promise<unknown>): Promise<{ code: string; hint: unknown; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as TenantScopeError;
    return { code: err.code, hint: err.details?.tenantHint, message: err.message };
  }
  return { code: 'ACCEPTED', hint: undefined, message: '' };
}

let store: MemoryApiKeyStore;
let clock: number;
const now = () => clock;
beforeEach(() => {
  store = new MemoryApiKeyStore();
  clock = Date.parse('2026-12-01T12:00:00Z');
  jwt.seen.length = 0;
});

/** Flips one character of the secret part (never the lookup id), keeping the encoding canonical. */
function wrongSecret(key: string): string {
  const i = key.length - 10;
  return key.slice(0, i) + (key[i] === 'A' ? 'B' : 'A') + key.slice(i + 1);
}

describe('API key format and storage', () => {
  it('is tsk_<tenant>_<43 base64url chars of 32 bytes>, shown once; the store has only a hash and the id', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme_eu', tools: ['whoami'], now });
    expect(key).toMatch(/^tsk_acme_eu_[A-Za-z0-9_-]{43}$/);
    const secret = key.slice('tsk_acme_eu_'.length);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    expect(record.id).toBe(secret.slice(0, 12));
    expect(parseApiKey(key)).toEqual({ tenantId: 'acme_eu', id: record.id, secret });
    const stored = await store.get(record.id);
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(stored?.hash).toBe(crypto.createHash('sha256').update(key).digest('base64url'));
    expect(stored?.hashAlgorithm).toBe('sha256');
  });

  it("never makes an id that starts with '-' (the CLI would read `keys revoke -…` as an option)", async () => {
    // Without the redraw, 1 key in 64 has such an id: P(none in 2,000) is about 2e-14.
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) ids.add((await createApiKey(store, { tenantId: 'acme', now })).record.id);
    expect(ids.size).toBe(2000);
    expect([...ids].filter((id) => id.startsWith('-'))).toEqual([]);
  });

  it('refuses bad input and stores nothing', async () => {
    const bad = [
      { tenantId: 'Acme' },
      { tenantId: 'acme', tools: ['ok', 'no spaces'] },
      { tenantId: 'acme', expiresAt: new Date(clock - 1) },
      { tenantId: 'acme', label: 'x'.repeat(201) },
    ];
    for (const o of bad) expect((await refusal(createApiKey(store, { ...o, now }))).code).toBe('INVALID_ARGUMENT');
    expect(await store.list()).toEqual([]);
    await expect(createApiKey(store, { tenantId: 'acme', pepper: 'short' })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
    });
  });

  it('parses only canonical keys', () => {
    const secret = crypto.randomBytes(32).toString('base64url');
    expect(parseApiKey(`tsk_acme_${secret}`)).toBeDefined();
    // The 43rd character carries 4 bits: a non-zero padding bit is another spelling of the same bytes.
    // The last character carries 4 bits then 2 zero bits; setting the lowest gives another spelling
    // that decodes to the same 32 bytes.
    const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const alias = `${secret.slice(0, -1)}${abc[abc.indexOf(secret.at(-1) as string) | 1]}`;
    expect(Buffer.from(alias, 'base64url').equals(Buffer.from(secret, 'base64url'))).toBe(true);
    expect(parseApiKey(`tsk_acme_${alias}`)).toBeUndefined();
    for (const k of [
      `tsk_acme_${secret}x`,
      `tsk_acme_${secret.slice(1)}`,
      `tsk_ACME_${secret}`,
      `tsk__${secret}`,
      'tsk_',
    ]) {
      expect(parseApiKey(k)).toBeUndefined();
    }
  });
});

describe('withApiKeys', () => {
  const verifier = (extra: Partial<Parameters<typeof withApiKeys>[1]> = {}) =>
    withApiKeys(jwt, { store, now, ...extra });

  it('accepts a key; tenant, tools and expiry come from the stored record', async () => {
    const expiresAt = new Date(clock + 86_400_000);
    const { key, record } = await createApiKey(store, {
      tenantId: 'acme',
      tools: ['whoami', 'query_*'],
      expiresAt,
      now,
    });
    const t = await verifier().verify(key);
    expect(isTenant(t)).toBe(true);
    expect(t.id).toBe('acme');
    expect(t.subject).toBe(`api-key:${record.id}`);
    expect(t.tokenId).toBe(apiKeyTokenId(record.id));
    expect(t.issuer).toBe(API_KEY_ISSUER);
    expect(t.allowedTools).toEqual(['whoami', 'query_*']);
    expect(t.expiresAt.getTime()).toBe(clock + 3_600_000); // re-verified on every request; capped at 1 h
    expect(jwt.seen).toEqual([]);
  });

  it('hands every other bearer token to the JWT verifier', async () => {
    expect((await refusal(verifier().verify('eyJhbGciOiJFUzI1NiJ9.e30.sig'))).code).toBe('AUTH_MALFORMED');
    expect(jwt.seen).toEqual(['eyJhbGciOiJFUzI1NiJ9.e30.sig']);
    // A token that starts like a key is a key: never a second chance as a JWT.
    expect((await refusal(verifier().verify('tsk_not-a-key'))).code).toBe('AUTH_API_KEY_INVALID');
    expect(jwt.seen).toHaveLength(1);
  });

  it('the allowed tools bound what the tenant sees, exactly as a JWT allowed_tools claim does', async () => {
    const { key } = await createApiKey(store, { tenantId: 'acme', tools: ['whoami'], now });
    const t = await verifier().verify(key);
    const tools = effectiveTools(['whoami', 'company_report', 'query_notes'], { tools: ['*'] }, t);
    expect([...tools]).toEqual(['whoami']);
  });

  it('refuses a wrong secret and an unknown lookup id, attributing them to no tenant', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme', now });
    const v = verifier();
    expect(await refusal(v.verify(wrongSecret(key)))).toMatchObject({ code: 'AUTH_API_KEY_INVALID', hint: undefined });
    const other = `tsk_acme_${crypto.randomBytes(32).toString('base64url')}`;
    expect(await refusal(v.verify(other))).toMatchObject({ code: 'AUTH_API_KEY_INVALID', hint: undefined });
    expect((await store.get(record.id))?.lastUsedAt).toBeUndefined();
  });

  it('the stored hash is useless as a key, alone or spliced behind the real lookup id', async () => {
    for (const pepper of [undefined, 'p'.repeat(32)]) {
      const { key, record } = await createApiKey(store, { tenantId: 'acme', now, pepper });
      const v = verifier({ pepper });
      await v.verify(key); // the key itself works
      expect(record.hash).toHaveLength(43); // same shape as a secret: a tempting thing to try
      for (const forged of [`tsk_acme_${record.hash}`, `tsk_acme_${record.id}${record.hash.slice(12)}`]) {
        expect(parseApiKey(forged)).toBeDefined();
        expect((await refusal(v.verify(forged))).code).toBe('AUTH_API_KEY_INVALID');
      }
    }
  });

  it('a peppered key needs the pepper: a verifier without it (or with another) refuses it', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme', now, pepper: 'a'.repeat(32) });
    expect(record.hashAlgorithm).toBe('hmac-sha256');
    expect(record.hash).toBe(hashApiKey(key, 'a'.repeat(32)).hash);
    expect((await refusal(verifier().verify(key))).code).toBe('AUTH_API_KEY_INVALID');
    expect((await refusal(verifier({ pepper: 'b'.repeat(32) }).verify(key))).code).toBe('AUTH_API_KEY_INVALID');
    expect((await verifier({ pepper: 'a'.repeat(32) }).verify(key)).id).toBe('acme');
  });

  it('compares the hash with crypto.timingSafeEqual, for right and wrong secrets alike', async () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    const { key, record } = await createApiKey(store, { tenantId: 'acme', now });
    const v = verifier();
    spy.mockClear();
    await v.verify(key);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.results[0]?.value).toBe(true);
    const [a, b] = spy.mock.calls[0] as [Buffer, Buffer];
    expect(Buffer.from(b).toString('base64url')).toBe(record.hash);
    expect(a).toHaveLength(32);
    spy.mockClear();
    await refusal(v.verify(wrongSecret(key)));
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.results[0]?.value).toBe(false);
  });

  it('the tenant comes from the record: a key whose text names another tenant is refused', async () => {
    const { key } = await createApiKey(store, { tenantId: 'acme', now });
    const v = verifier();
    // Editing the tenant in the text breaks the hash (it covers the whole key).
    expect((await refusal(v.verify(key.replace('tsk_acme_', 'tsk_globex_')))).code).toBe('AUTH_API_KEY_INVALID');
    // A record whose tenant is not the one its key names (a tampered or mis-migrated row): refused,
    // never served as either tenant.
    const secret = crypto.randomBytes(32).toString('base64url');
    const text = `tsk_acme_${secret}`;
    const forged: ApiKeyRecord = {
      ...(await createApiKey(store, { tenantId: 'initech', now })).record,
      id: secret.slice(0, 12),
      tenantId: 'globex',
      hash: hashApiKey(text).hash,
    };
    await store.insert(forged);
    const r = await refusal(v.verify(text));
    expect(r.code).toBe('AUTH_API_KEY_TENANT_MISMATCH');
    expect(r.message).not.toMatch(/globex|acme/);
  });

  it('refuses a revoked key: revoked in the store, or through the shared RevocationStore', async () => {
    const revocations = new MemoryRevocationStore({ now });
    const v = verifier({ revocations });
    const a = await createApiKey(store, { tenantId: 'acme', now });
    await v.verify(a.key);
    expect(await revokeApiKey(store, a.record.id, { revocations, now })).toMatchObject({ id: a.record.id });
    expect(await refusal(v.verify(a.key))).toMatchObject({ code: 'AUTH_API_KEY_REVOKED', hint: 'acme' });
    expect(await revocations.isTokenRevoked(apiKeyTokenId(a.record.id))).toBe(true);
    // Only in the RevocationStore (another replica revoked it, or the admin endpoint did by token id).
    const b = await createApiKey(store, { tenantId: 'acme', now });
    await revocations.revokeToken(apiKeyTokenId(b.record.id), new Date(clock + 60_000));
    expect((await refusal(v.verify(b.key))).code).toBe('AUTH_API_KEY_REVOKED');
    expect(await revokeApiKey(store, 'unknownid123')).toBeUndefined();
    await expect(revokeApiKey(store, 'short')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('refuses a key of a halted tenant', async () => {
    const revocations = new MemoryRevocationStore();
    const { key } = await createApiKey(store, { tenantId: 'acme', now });
    await revocations.haltTenant('acme', 'drill');
    expect(await refusal(verifier({ revocations }).verify(key))).toMatchObject({ code: 'TENANT_HALTED', hint: 'acme' });
  });

  it('refuses an expired key', async () => {
    const { key } = await createApiKey(store, { tenantId: 'acme', now, expiresAt: new Date(clock + 60_000) });
    const v = verifier();
    expect((await v.verify(key)).expiresAt.getTime()).toBe(clock + 60_000);
    clock += 60_000;
    expect(await refusal(v.verify(key))).toMatchObject({ code: 'AUTH_API_KEY_EXPIRED', hint: 'acme' });
  });

  it('rate-limits failed attempts per lookup id: after N failures even the right key waits for the window', async () => {
    const attempts = new MemoryApiKeyAttemptLimiter({ maxFailures: 3, windowMs: 60_000, now });
    const v = verifier({ attempts });
    const { key } = await createApiKey(store, { tenantId: 'acme', now });
    const other = await createApiKey(store, { tenantId: 'acme', now });
    for (let i = 0; i < 3; i++) expect((await refusal(v.verify(wrongSecret(key)))).code).toBe('AUTH_API_KEY_INVALID');
    expect((await refusal(v.verify(wrongSecret(key)))).code).toBe('AUTH_RATE_LIMITED');
    expect((await refusal(v.verify(key))).code).toBe('AUTH_RATE_LIMITED');
    expect((await v.verify(other.key)).id).toBe('acme'); // per lookup id, not per tenant
    clock += 60_000;
    expect((await v.verify(key)).id).toBe('acme');
  });

  it('the attempt limiter is bounded', async () => {
    const attempts = new MemoryApiKeyAttemptLimiter({ maxFailures: 1, maxIds: 2, now });
    for (const id of ['a', 'b', 'c']) await attempts.fail(id);
    expect(await attempts.blocked('a')).toBe(false); // evicted, oldest first
    expect(await attempts.blocked('c')).toBe(true);
  });

  it('writes last-used at most once per lastUsedWriteMs, and a failed write does not refuse', async () => {
    const touches: string[] = [];
    const counting: ApiKeyStore = {
      insert: (r) => store.insert(r),
      get: (id) => store.get(id),
      list: (o) => store.list(o),
      revoke: (id, at) => store.revoke(id, at),
      touch: async (id, at) => {
        touches.push(id);
        if (touches.length === 3) throw new Error('store down');
        await store.touch(id, at);
      },
    };
    const errors: unknown[] = [];
    const v = withApiKeys(jwt, { store: counting, now, lastUsedWriteMs: 1000, onTouchError: (e) => errors.push(e) });
    const { key, record } = await createApiKey(counting, { tenantId: 'acme', now });
    for (let i = 0; i < 20; i++) await v.verify(key);
    expect(touches).toHaveLength(1);
    expect((await store.get(record.id))?.lastUsedAt?.getTime()).toBe(clock);
    clock += 1000;
    await v.verify(key);
    clock += 1000;
    expect((await v.verify(key)).id).toBe('acme');
    await new Promise((r) => setImmediate(r));
    expect(touches).toHaveLength(3);
    expect(errors).toHaveLength(1);
  });

  it('a store that cannot answer refuses (AUTH_KEYS_UNAVAILABLE), without the driver text', async () => {
    const broken: ApiKeyStore = {
      insert: (r) => store.insert(r),
      get: async () => Promise.reject(new Error('connection refused to 10.0.0.9')),
      list: (o) => store.list(o),
      revoke: (id, at) => store.revoke(id, at),
      touch: (id, at) => store.touch(id, at),
    };
    const { key } = await createApiKey(store, { tenantId: 'acme', now });
    const r = await refusal(withApiKeys(jwt, { store: broken, now }).verify(key));
    expect(r.code).toBe('AUTH_KEYS_UNAVAILABLE');
    expect(r.message).not.toContain('10.0.0.9');
  });

  it('the memory store is bounded and never overwrites an id', async () => {
    const small = new MemoryApiKeyStore({ maxKeys: 1 });
    const { record } = await createApiKey(small, { tenantId: 'acme', now });
    expect(await small.insert({ ...record, tenantId: 'globex' })).toBe(false);
    expect((await small.get(record.id))?.tenantId).toBe('acme');
    await expect(createApiKey(small, { tenantId: 'acme', now })).rejects.toMatchObject({
      code: 'API_KEY_STORE_FAILED',
    });
  });
});
