/** Shared state for several replicas, in real PostgreSQL: what one replica decides, all enforce. */

import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PostgresCallLimiter, PostgresRevocationStore } from '../../packages/postgres/src/replica-state.ts';

let admin: pg.Pool;
let a: pg.Pool;
let b: pg.Pool;
const db = `replica_state_${process.pid}`;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: inject('databaseUrl'), max: 2 });
  await admin.query(`drop database if exists ${db}`);
  await admin.query(`create database ${db}`);
  const url = new URL(inject('databaseUrl'));
  url.pathname = `/${db}`;
  // Two pools stand for two replicas.
  a = new pg.Pool({ connectionString: url.toString(), max: 4 });
  b = new pg.Pool({ connectionString: url.toString(), max: 4 });
  // The database is dropped WITH (FORCE) at the end; its backends' goodbye is expected.
  for (const p of [a, b]) p.on('error', () => {});
  await new PostgresRevocationStore(a, { schema: 'state_test' }).migrate();
});
afterAll(async () => {
  await a?.end();
  await b?.end();
  await admin?.query(`drop database if exists ${db} with (force)`);
  await admin?.end();
});

describe('PostgresRevocationStore', () => {
  it('a token revoked or a tenant halted through one replica is refused by another', async () => {
    const issuer = await createTestIssuer();
    const storeA = new PostgresRevocationStore(a, { schema: 'state_test', cacheMs: 0 });
    const storeB = new PostgresRevocationStore(b, { schema: 'state_test', cacheMs: 0 });
    const replicaB = await issuer.verifier({ revocations: storeB, cacheSize: 0 });
    const token = await issuer.mint({ tenant: 'acme' });
    const tenant = await replicaB.verify(token);
    await storeA.revokeToken(tenant.tokenId as string, tenant.expiresAt);
    await expect(replicaB.verify(token)).rejects.toMatchObject({ code: 'AUTH_REVOKED' });
    await storeA.haltTenant('globex', 'incident 42');
    await expect(replicaB.verify(await issuer.mint({ tenant: 'globex' }))).rejects.toMatchObject({
      code: 'TENANT_HALTED',
    });
    expect((await replicaB.verify(await issuer.mint({ tenant: 'initech' }))).id).toBe('initech');
    await storeA.resumeTenant('globex');
    expect((await replicaB.verify(await issuer.mint({ tenant: 'globex' }))).id).toBe('globex');
  });

  it('with a cache, a replica notices a halt within cacheMs', async () => {
    const storeA = new PostgresRevocationStore(a, { schema: 'state_test', cacheMs: 0 });
    const storeB = new PostgresRevocationStore(b, { schema: 'state_test', cacheMs: 200 });
    expect(await storeB.isTenantHalted('umbrella')).toBe(false);
    await storeA.haltTenant('umbrella', 'drill');
    await new Promise((r) => setTimeout(r, 250));
    expect(await storeB.isTenantHalted('umbrella')).toBe(true);
  });

  it('refuses bad input', async () => {
    const store = new PostgresRevocationStore(a, { schema: 'state_test' });
    await expect(store.revokeToken('', new Date())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.revokeToken('x', new Date(Number.NaN))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => new PostgresRevocationStore(a, { schema: 'bad; drop' })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
  });
});

describe('PostgresCallLimiter', () => {
  it('the call rate is shared: two replicas together grant at most the limit', async () => {
    const la = new PostgresCallLimiter(a, { schema: 'state_test' });
    const lb = new PostgresCallLimiter(b, { schema: 'state_test' });
    const limits = { callsPerMinute: 10, maxConcurrentCalls: 100 };
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => ((i % 2 ? la : lb) as PostgresCallLimiter).acquire('acme', limits)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect(
      results
        .filter((r) => r.status === 'rejected')
        .every((r) => (r.reason as { code: string }).code === 'RATE_LIMITED'),
    ).toBe(true);
    // Another tenant has its own bucket.
    await expect(la.acquire('globex', limits)).resolves.toBeTypeOf('function');
  });
});
