/**
 * Cache bounds, TTL limits and call scoping of the injector, over the resolved Secrets Manager
 * (env, LocalStack or the protocol double). A controllable clock makes the TTL edges exact.
 */
import { CreateSecretCommand, DeleteSecretCommand } from '@aws-sdk/client-secrets-manager';
import { createTestIssuer, rejection, type TestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { awsSecretsManager } from './aws.ts';
import { DEFAULT_TTL_MS, MAX_TTL_MS, secretsInjector } from './injector.ts';
import { callFor, counting, runId, smClient } from './test-helpers.ts';

const sm = inject('secretsManager');
const client = smClient(sm);
const provider = awsSecretsManager({ client });
const run = runId();
let issuer: TestIssuer;
const created: string[] = [];

beforeAll(async () => {
  issuer = await createTestIssuer();
});
afterAll(async () => {
  await Promise.allSettled(
    created.map((id) => client.send(new DeleteSecretCommand({ SecretId: id, ForceDeleteWithoutRecovery: true }))),
  );
});

async function seeded(label: string, names: Record<string, string>) {
  const t = await issuer.tenant(`${run}-${label}`);
  const inj = secretsInjector({ provider });
  for (const [n, v] of Object.entries(names)) {
    await inj.unscopedAdmin(t).put(n, v);
    created.push(`tenants/${t.id}/${n}`);
  }
  return t;
}

describe('secretsInjector configuration', () => {
  it('TTL defaults to 5 minutes and may not exceed 1 hour; maxEntries must be positive', async () => {
    expect(DEFAULT_TTL_MS).toBe(300_000);
    expect(MAX_TTL_MS).toBe(3_600_000);
    expect(secretsInjector({ provider }).ttl).toBe(300_000);
    expect(secretsInjector({ provider, ttl: 3_600_000 }).ttl).toBe(3_600_000);
    for (const ttl of [3_600_001, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => secretsInjector({ provider, ttl }), String(ttl)).toThrow(
        expect.objectContaining({ code: 'INVALID_CONFIG' }),
      );
    }
    for (const maxEntries of [0, -5, 1.5]) {
      expect(() => secretsInjector({ provider, maxEntries })).toThrow(
        expect.objectContaining({ code: 'INVALID_CONFIG' }),
      );
    }
    expect(() => secretsInjector({ provider, naming: (t, n) => `x/${t.id}/${n}` })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    expect(() => secretsInjector({} as never)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('a custom naming is used for reads and for DSAR listing', async () => {
    const t = await issuer.tenant(`${run}-naming`);
    const inj = secretsInjector({
      provider,
      naming: (tenant, name) => `apps/crm/${tenant.id}/${name}`,
      tenantPrefix: (tenant) => `apps/crm/${tenant.id}/`,
    });
    await inj.unscopedAdmin(t).put('k', 'custom-naming-value');
    created.push(`apps/crm/${t.id}/k`);
    expect(
      await inj
        .provider()
        .forCall(callFor(t, ['k']))
        .get('k'),
    ).toBe('custom-naming-value');
    expect((await inj.exportTenant(t)).secrets).toEqual([{ name: 'k' }]);
  });

  it('a too-broad tenantPrefix never lets a DSAR reach another tenant', async () => {
    const a = await seeded('broad', { k: 'broad-a-value' });
    const b = await seeded('broad-2', { k: 'broad-b-value' }); // its id starts with a's id
    const broad = secretsInjector({
      provider,
      naming: (t, n) => `tenants/${t.id}/${n}`,
      tenantPrefix: (t) => `tenants/${t.id}`, // wrong on purpose: no trailing "/", so it matches b's too
    });
    // Every listed id must round-trip through the naming as a valid name: "-2/k" and "/k" do not,
    // so a misconfigured prefix lists and deletes nothing rather than another tenant's secrets.
    expect((await broad.exportTenant(a)).secrets).toEqual([]);
    expect((await broad.deleteTenant(a)).deleted).toEqual([]);
    const s = secretsInjector({ provider }).provider();
    expect(await s.forCall(callFor(b, ['k'])).get('k')).toBe('broad-b-value');
    expect(await s.forCall(callFor(a, ['k'])).get('k')).toBe('broad-a-value');
    // a prefix that does not name the tenant at all is refused outright
    const none = secretsInjector({
      provider,
      naming: (t, n) => `tenants/${t.id}/${n}`,
      tenantPrefix: () => 'tenants/',
    });
    expect((await rejection(none.exportTenant(a))).code).toBe('INVALID_CONFIG');
  });
});

describe('the cache', () => {
  it('serves a value for exactly TTL, then fetches again (controlled clock)', async () => {
    const t = await seeded('ttl', { k: 'ttl-value-one' });
    let now = 1_000_000;
    const counted = counting(provider);
    const p = secretsInjector({ provider: counted, now: () => now }).provider();
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('ttl-value-one');
    await secretsInjector({ provider }).unscopedAdmin(t).put('k', 'ttl-value-two');
    now += DEFAULT_TTL_MS - 1;
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('ttl-value-one');
    expect(counted.counts.get).toBe(1);
    now += 1; // exactly TTL after it was cached: expired
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('ttl-value-two');
    expect(counted.counts.get).toBe(2);
  });

  it('ttl 0 disables caching', async () => {
    const t = await seeded('nocache', { k: 'no-cache-value' });
    const counted = counting(provider);
    const p = secretsInjector({ provider: counted, ttl: 0 }).provider();
    for (let i = 0; i < 3; i++) await p.forCall(callFor(t, ['k'])).get('k');
    expect(counted.counts.get).toBe(3);
  });

  it('is bounded: past maxEntries the least recently used value is evicted', async () => {
    const names = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`k${i}`, `lru-value-${i}`]));
    const t = await seeded('lru', names);
    const counted = counting(provider);
    const inj = secretsInjector({ provider: counted, maxEntries: 4 });
    const s = () => inj.provider().forCall(callFor(t, Object.keys(names)));
    for (const n of Object.keys(names)) expect(await s().get(n)).toBe(names[n]);
    expect(inj.stats().size).toBe(4);
    expect(counted.counts.get).toBe(6);
    await s().get('k5'); // most recent: a hit
    expect(counted.counts.get).toBe(6);
    await s().get('k0'); // evicted: fetched again
    expect(counted.counts.get).toBe(7);
  });
});

describe('call scoping', () => {
  it('refuses reads after the call ended, and a value shorter than redaction can mask', async () => {
    const t = await seeded('scope', { k: 'scope-value-1' });
    // written with the raw client: the injector's own put refuses values this short
    await client.send(new CreateSecretCommand({ Name: `tenants/${t.id}/short`, SecretString: 'abc' }));
    created.push(`tenants/${t.id}/short`);
    const inj = secretsInjector({ provider });
    const prov = inj.provider();
    const call = callFor(t, ['k', 'short']);
    const s = prov.forCall(call);
    expect(await s.get('k')).toBe('scope-value-1');
    await prov.release?.(s, call);
    expect((await rejection(s.get('k'))).code).toBe('SECRET_CONTEXT_CLOSED');
    const s2 = prov.forCall(callFor(t, ['k', 'short']));
    expect((await rejection(s2.get('short'))).code).toBe('SECRET_UNAVAILABLE');
  });

  it('an aborted call stops waiting; the declared list is exposed and frozen', async () => {
    const t = await seeded('abort', { k: 'abort-value-1' });
    const counted = counting(provider);
    counted.delay = 200;
    const call = callFor(t, ['k']);
    const s = secretsInjector({ provider: counted }).provider().forCall(call);
    expect(s.declared).toEqual(['k']);
    expect(Object.isFrozen(s.declared)).toBe(true);
    const pending = s.get('k');
    call.abort();
    expect(await rejection(pending)).toBeInstanceOf(Error);
    expect(call.redactions.size).toBe(0);
  });

  it('unscopedAdmin refuses bad names and values before writing', async () => {
    const t = await issuer.tenant(`${run}-admin`);
    const counted = counting(provider);
    const admin = secretsInjector({ provider: counted }).unscopedAdmin(t);
    expect((await rejection(admin.put('../x', 'value-long'))).code).toBe('SECRET_NAME_INVALID');
    expect((await rejection(admin.put('k', 'ab'))).code).toBe('SECRET_VALUE_INVALID');
    expect((await rejection(admin.put('k', 42 as never))).code).toBe('SECRET_VALUE_INVALID');
    expect((await rejection(admin.delete('A'))).code).toBe('SECRET_NAME_INVALID');
    expect(counted.total()).toBe(0);
    expect(() => secretsInjector({ provider }).unscopedAdmin({ id: 'acme' } as never)).toThrow(
      expect.objectContaining({ code: 'NOT_A_TENANT' }),
    );
  });
});
