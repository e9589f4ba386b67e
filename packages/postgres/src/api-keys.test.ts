/**
 * The Postgres API key store behind core's withApiKeys, on a real PostgreSQL (a scratch database).
 * In CI's PgBouncer pass DATABASE_URL is PgBouncer in transaction mode, so this file also runs
 * every store call through it (.ci/passes.d/25-pgbouncer.sh lists packages/postgres).
 */
import { apiKeyTokenId, createApiKey, revokeApiKey, type TokenVerifier, withApiKeys } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { apiKeyStoreSql, PostgresApiKeyAttemptLimiter, PostgresApiKeyStore } from './api-keys.ts';
import { PostgresRevocationStore } from './replica-state.ts';
import { createScratchDatabase, type ScratchDatabase } from './testing/scratch.ts';

let db: ScratchDatabase;
let pool: pg.Pool;
let store: PostgresApiKeyStore;
let revocations: PostgresRevocationStore;
const jwt: TokenVerifier = {
  audience: 'http://localhost/mcp',
  issuers: ['https://issuer.test'],
  verify: async () => Promise.reject(new Error('not used')),
};

beforeAll(async () => {
  db = await createScratchDatabase(inject('databaseUrl'), 'apikeys');
  pool = new pg.Pool({ connectionString: db.ownerUrl, max: 3 });
  store = new PostgresApiKeyStore(pool, { schema: 'keys_test', lastUsedWriteMs: 60_000 });
  await store.migrate();
  await store.migrate(); // idempotent
  revocations = new PostgresRevocationStore(pool, { schema: 'keys_test', cacheMs: 0 });
  await revocations.migrate();
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('PostgresApiKeyStore', () => {
  it('stores the hash, never the key; a key verifies with its tenant and tools from the row', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme', tools: ['whoami'], label: 'ci bot' });
    const raw = await pool.query('select * from keys_test.api_keys where id = $1', [record.id]);
    expect(JSON.stringify(raw.rows)).not.toContain(key.slice('tsk_acme_'.length));
    expect(raw.rows[0]).toMatchObject({
      tenant_id: 'acme',
      hash: record.hash,
      hash_algorithm: 'sha256',
      tools: ['whoami'],
    });
    const t = await withApiKeys(jwt, { store, revocations }).verify(key);
    expect({ id: t.id, tools: t.allowedTools, subject: t.subject }).toEqual({
      id: 'acme',
      tools: ['whoami'],
      subject: apiKeyTokenId(record.id),
    });
  });

  it('the row is the authority: a row moved to another tenant refuses the key instead of serving that tenant', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme' });
    const v = withApiKeys(jwt, { store });
    expect(await codeOf(v.verify(key))).toBe('ok');
    await pool.query(`update keys_test.api_keys set tenant_id = 'globex' where id = $1`, [record.id]);
    expect(await codeOf(v.verify(key))).toBe('AUTH_API_KEY_TENANT_MISMATCH');
  });

  it('wrong secret, unknown id, stored hash as the key: refused', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme' });
    const v = withApiKeys(jwt, { store });
    const flipped = key.slice(0, -10) + (key.at(-10) === 'A' ? 'B' : 'A') + key.slice(-9);
    expect(await codeOf(v.verify(flipped))).toBe('AUTH_API_KEY_INVALID');
    expect(await codeOf(v.verify(`tsk_acme_${record.hash}`))).toBe('AUTH_API_KEY_INVALID');
    expect(await codeOf(v.verify(`tsk_acme_${record.id}${record.hash.slice(12)}`))).toBe('AUTH_API_KEY_INVALID');
  });

  it('revocation: flag in the row plus the shared revocation table; another verifier refuses it too', async () => {
    const { key, record } = await createApiKey(store, {
      tenantId: 'acme',
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    const replicaA = withApiKeys(jwt, { store, revocations });
    const replicaB = withApiKeys(jwt, {
      store: new PostgresApiKeyStore(pool, { schema: 'keys_test' }),
      revocations: new PostgresRevocationStore(pool, { schema: 'keys_test', cacheMs: 0 }),
    });
    expect(await codeOf(replicaB.verify(key))).toBe('ok');
    const revoked = await revokeApiKey(store, record.id, { revocations });
    expect(revoked?.revokedAt).toBeInstanceOf(Date);
    expect(await codeOf(replicaA.verify(key))).toBe('AUTH_API_KEY_REVOKED');
    expect(await codeOf(replicaB.verify(key))).toBe('AUTH_API_KEY_REVOKED');
    const r = await pool.query('select expires_at from keys_test.revoked_tokens where jti = $1', [
      apiKeyTokenId(record.id),
    ]);
    expect(r.rows[0]?.expires_at.getTime()).toBe(record.expiresAt?.getTime());
    // Revoking again keeps the first time.
    expect((await revokeApiKey(store, record.id))?.revokedAt).toEqual(revoked?.revokedAt);
  });

  it('expired keys are refused', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme', expiresAt: new Date(Date.now() + 60_000) });
    await pool.query(`update keys_test.api_keys set expires_at = now() - interval '1 second' where id = $1`, [
      record.id,
    ]);
    expect(await codeOf(withApiKeys(jwt, { store }).verify(key))).toBe('AUTH_API_KEY_EXPIRED');
  });

  it('last-used is written at most once per interval, across verifiers', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme' });
    const t0 = Date.parse('2026-12-01T10:00:00Z');
    let clock = t0;
    // Two replicas, each throttling locally at 0 ms: only the database's own throttle is left.
    const a = withApiKeys(jwt, { store, lastUsedWriteMs: 0, now: () => clock });
    const b = withApiKeys(jwt, { store, lastUsedWriteMs: 0, now: () => clock });
    await a.verify(key);
    // verify() writes last-used in the background: wait for it (a fixed 50 ms could be too short
    // on a loaded machine), bounded.
    for (const end = Date.now() + 10_000; !(await store.get(record.id))?.lastUsedAt && Date.now() < end; )
      await new Promise((r) => setTimeout(r, 20));
    expect((await store.get(record.id))?.lastUsedAt?.getTime()).toBe(t0);
    clock = t0 + 30_000;
    await b.verify(key);
    await store.touch(record.id, new Date(clock));
    expect((await store.get(record.id))?.lastUsedAt?.getTime()).toBe(t0);
    clock = t0 + 61_000;
    await store.touch(record.id, new Date(clock));
    expect((await store.get(record.id))?.lastUsedAt?.getTime()).toBe(t0 + 61_000);
  });

  it('failed attempts are limited per key id across replicas (counted in the table)', async () => {
    const { key, record } = await createApiKey(store, { tenantId: 'acme' });
    const other = await createApiKey(store, { tenantId: 'acme' });
    const replica = () =>
      withApiKeys(jwt, {
        store,
        attempts: new PostgresApiKeyAttemptLimiter(pool, { schema: 'keys_test', maxFailures: 3, windowMs: 60_000 }),
      });
    const [a, b] = [replica(), replica()];
    const wrong = key.slice(0, -10) + (key.at(-10) === 'A' ? 'B' : 'A') + key.slice(-9);
    expect([await codeOf(a.verify(wrong)), await codeOf(b.verify(wrong)), await codeOf(a.verify(wrong))]).toEqual([
      'AUTH_API_KEY_INVALID',
      'AUTH_API_KEY_INVALID',
      'AUTH_API_KEY_INVALID',
    ]);
    // Each replica saw fewer than 3 failures; together they reached the limit.
    expect(await codeOf(b.verify(key))).toBe('AUTH_RATE_LIMITED');
    expect(await codeOf(a.verify(key))).toBe('AUTH_RATE_LIMITED');
    expect(await codeOf(a.verify(other.key))).toBe('ok');
    // The window ends: the right key works again, and a new failure starts a new count.
    await pool.query(`update keys_test.api_keys set failures_since = now() - interval '61 seconds' where id = $1`, [
      record.id,
    ]);
    expect(await codeOf(b.verify(key))).toBe('ok');
    expect(await codeOf(a.verify(wrong))).toBe('AUTH_API_KEY_INVALID');
    const r = await pool.query('select failed_attempts from keys_test.api_keys where id = $1', [record.id]);
    expect(r.rows[0]?.failed_attempts).toBe(1);
  });

  it('insert never overwrites an id; list is per tenant, newest first, bounded', async () => {
    const { record } = await createApiKey(store, { tenantId: 'initech' });
    expect(await store.insert({ ...record, tenantId: 'globex', hash: 'x'.repeat(43) })).toBe(false);
    expect((await store.get(record.id))?.tenantId).toBe('initech');
    await createApiKey(store, { tenantId: 'initech' });
    const list = await store.list({ tenantId: 'initech' });
    expect(list.map((r) => r.tenantId)).toEqual(['initech', 'initech']);
    expect(list[0]?.createdAt.getTime()).toBeGreaterThanOrEqual(list[1]?.createdAt.getTime() ?? 0);
    expect(await store.list({ tenantId: 'initech', limit: 1 })).toHaveLength(1);
    expect((await store.list()).length).toBeGreaterThan(2);
  });

  it('the table refuses rows that are not a hash record', async () => {
    for (const [col, val] of [
      ['id', 'short'],
      ['tenant_id', 'Not A Tenant'],
      ['hash', 'too-short'],
      ['hash_algorithm', 'md5'],
    ]) {
      const row: Record<string, string> = {
        id: 'abcdefghijkl',
        tenant_id: 'acme',
        hash: 'h'.repeat(43),
        hash_algorithm: 'sha256',
      };
      row[col as string] = val as string;
      await expect(
        pool.query(
          `insert into keys_test.api_keys (id, tenant_id, hash, hash_algorithm, created_at) values ($1, $2, $3, $4, now())`,
          [row.id, row.tenant_id, row.hash, row.hash_algorithm],
        ),
      ).rejects.toMatchObject({ code: '23514' });
    }
    expect(apiKeyStoreSql({ schema: 'x' })).toContain('"x".api_keys');
    expect(() => new PostgresApiKeyStore(pool, { schema: 'bad"name' })).toThrow(/lowercase identifier/);
  });
});
