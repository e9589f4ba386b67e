/**
 * The Secrets Manager suite. It runs against whatever test/setup/services/secrets-manager.ts
 * resolved: SECRETS_MANAGER_ENDPOINT, else LocalStack (testcontainers), else the testkit's
 * SecretsManagerProtocolDouble. Every test uses run-unique tenant ids, so a shared server is fine.
 */
import { CreateSecretCommand, DeleteSecretCommand } from '@aws-sdk/client-secrets-manager';
import type { Tenant } from '@tenantscope/core';
import { createTestIssuer, rejection, SecretsManagerProtocolDouble, type TestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { awsSecretsManager } from './aws.ts';
import { secretsInjector } from './injector.ts';
import { callFor, counting, HOSTILE_NAMES, runId, smClient } from './test-helpers.ts';

const sm = inject('secretsManager');
const client = smClient(sm);
const provider = awsSecretsManager({ client });
let issuer: TestIssuer;
const run = runId();
const tid = (t: string) => `${run}-${t}`;
const created: string[] = [];

async function seed(tenant: Tenant, name: string, value: string): Promise<string | undefined> {
  const inj = secretsInjector({ provider });
  const out = await inj.unscopedAdmin(tenant).put(name, value);
  created.push(`tenants/${tenant.id}/${name}`);
  return out.versionId;
}

beforeAll(async () => {
  console.log(`[secrets] Secrets Manager source: ${sm.source} (${sm.endpoint})`);
  issuer = await createTestIssuer();
});

afterAll(async () => {
  await Promise.allSettled(
    created.map((id) => client.send(new DeleteSecretCommand({ SecretId: id, ForceDeleteWithoutRecovery: true }))),
  );
});

describe(`Secrets Manager provider (${sm.source})`, () => {
  it('reads AWSCURRENT by default, a pinned version or stage on request', async () => {
    const acme = await issuer.tenant(tid('acme'));
    const v1 = await seed(acme, 'mail_api_key', 'acme-key-v1-0001');
    await seed(acme, 'mail_api_key', 'acme-key-v2-0002');
    expect(v1).toBeTruthy();
    const inj = secretsInjector({ provider });
    const call = callFor(acme, ['mail_api_key']);
    const s = inj.provider().forCall(call);
    expect(await s.get('mail_api_key')).toBe('acme-key-v2-0002');
    expect(await s.get('mail_api_key', { versionId: v1 as string })).toBe('acme-key-v1-0001');
    expect(await s.get('mail_api_key', { versionStage: 'AWSPREVIOUS' })).toBe('acme-key-v1-0001');
    expect(await s.get('mail_api_key', { versionStage: 'AWSCURRENT' })).toBe('acme-key-v2-0002');
    // every value handed out is registered for redaction
    expect([...call.redactions]).toEqual(expect.arrayContaining(['acme-key-v1-0001', 'acme-key-v2-0002']));
  });

  it('a missing secret or version is SECRET_NOT_FOUND, naming only the name', async () => {
    const acme = await issuer.tenant(tid('acme'));
    const s = secretsInjector({ provider })
      .provider()
      .forCall(callFor(acme, ['nothing_here', 'mail_api_key']));
    const e = await rejection(s.get('nothing_here'));
    expect(e.code).toBe('SECRET_NOT_FOUND');
    expect(e.message).toContain('nothing_here');
    expect(e.message).not.toContain('tenants/');
    const v = await rejection(s.get('mail_api_key', { versionId: '00000000-0000-4000-8000-000000000000' }));
    expect(v.code).toBe('SECRET_NOT_FOUND');
  });

  it('BatchGetSecretValue: values for all, and any Errors[] entry fails the whole read', async () => {
    const t = await issuer.tenant(tid('batch'));
    await seed(t, 'one', 'batch-one-value');
    await seed(t, 'two', 'batch-two-value');
    const inj = secretsInjector({ provider });
    const call = callFor(t, ['one', 'two', 'three']);
    const s = inj.provider().forCall(call);
    expect(await s.getMany(['one', 'two'])).toEqual({ one: 'batch-one-value', two: 'batch-two-value' });

    const fresh = secretsInjector({ provider });
    const call2 = callFor(t, ['one', 'two', 'three']);
    const e = await rejection(fresh.provider().forCall(call2).getMany(['one', 'three']));
    expect(e.code).toBe('SECRET_NOT_FOUND');
    expect(call2.redactions.size).toBe(0); // nothing handed out from a failed batch
    expect(fresh.stats().size).toBe(0); // and nothing cached from it
    // the provider itself fails on an Errors[] entry, too
    const direct = await rejection(
      provider.getMany({ tenant: t, ids: [`tenants/${t.id}/one`, `tenants/${t.id}/missing`] }),
    );
    expect(direct.code).toBe('SECRET_NOT_FOUND');
  });

  it('access denied is SECRET_ACCESS_DENIED for GetSecretValue and for a BatchGetSecretValue Errors[] entry', async () => {
    // LocalStack and moto do not enforce IAM, so this runs against a protocol double with a policy,
    // in every run, whatever the suite's main source is.
    const double = new SecretsManagerProtocolDouble({
      credentials: [{ accessKeyId: 'app', secretAccessKey: 'app-secret' }],
      authorize: ({ secretName }) => !secretName?.startsWith('tenants/locked/'),
    });
    const endpoint = await double.start();
    try {
      const c = smClient({ ...sm, endpoint, region: 'us-east-1', accessKeyId: 'app', secretAccessKey: 'app-secret' });
      const p = awsSecretsManager({ client: c });
      const locked = await issuer.tenant('locked');
      const open = await issuer.tenant('open');
      const inj = secretsInjector({ provider: p });
      await inj.unscopedAdmin(open).put('k', 'open-value-1');
      const e = await rejection(
        inj
          .provider()
          .forCall(callFor(locked, ['k']))
          .get('k'),
      );
      expect(e.code).toBe('SECRET_ACCESS_DENIED');
      const b = await rejection(p.getMany({ tenant: open, ids: ['tenants/open/k', 'tenants/locked/k'] }));
      expect(b.code).toBe('SECRET_ACCESS_DENIED');
      // wrong credentials are refused by the double's signature check, and mapped too
      const wrong = awsSecretsManager({
        client: smClient({ ...sm, endpoint, region: 'us-east-1', accessKeyId: 'app', secretAccessKey: 'nope' }),
      });
      const w = await rejection(wrong.get({ tenant: open, id: 'tenants/open/k' }));
      expect(w.code).toBe('SECRET_ACCESS_DENIED');
    } finally {
      await double.stop();
    }
  });

  it("another tenant's secret by any spelling is refused with a typed error and nothing is fetched", async () => {
    const acme = await issuer.tenant(tid('hostile'));
    const globex = await issuer.tenant(tid('globex'));
    await seed(globex, 'mail_api_key', 'globex-secret-key-0001');
    const counted = counting(provider);
    const inj = secretsInjector({ provider: counted });
    // Even a tool that "declares" the hostile spelling gets nothing.
    const hostile = HOSTILE_NAMES.map((n) => (typeof n === 'string' ? n.replaceAll('globex', globex.id) : n));
    const declared = ['mail_api_key', ...hostile.filter((n): n is string => typeof n === 'string')];
    const call = callFor(acme, declared);
    const s = inj.provider().forCall(call);
    for (const n of hostile) {
      for (const attempt of [
        () => s.get(n as string),
        () => s.refresh(n as string),
        () => s.getMany(['mail_api_key', n as string]),
        () => s.getJson(n as string),
      ]) {
        const e = await rejection(attempt);
        expect(e.code, `spelling ${JSON.stringify(String(n))}`).toBe('SECRET_NAME_INVALID');
        expect(e.message).not.toContain('globex-secret');
      }
    }
    // A valid but undeclared name is refused too.
    const u = await rejection(s.get('other_key'));
    expect(u.code).toBe('SECRET_NOT_DECLARED');
    expect(counted.total()).toBe(0);
    expect(call.redactions.size).toBe(0);
    // And acme's own "mail_api_key" is acme's (it has none): never globex's.
    const own = await rejection(s.get('mail_api_key'));
    expect(own.code).toBe('SECRET_NOT_FOUND');
  });

  it('bad read options are typed errors and fetch nothing', async () => {
    const acme = await issuer.tenant(tid('acme'));
    const counted = counting(provider);
    const s = secretsInjector({ provider: counted })
      .provider()
      .forCall(callFor(acme, ['mail_api_key']));
    for (const opts of [
      { versionId: '../x' },
      { versionId: 'a b' },
      { versionStage: 'AWS/CURRENT' },
      { versionId: '00000000-0000-4000-8000-000000000000', versionStage: 'AWSPREVIOUS' },
      { secretId: 'tenants/globex/mail_api_key' },
      null,
      'AWSPREVIOUS',
    ]) {
      const e = await rejection(s.get('mail_api_key', opts as never));
      expect(e.code, JSON.stringify(opts)).toBe('SECRET_NAME_INVALID');
    }
    expect((await rejection(s.getMany('mail_api_key' as never))).code).toBe('SECRET_NAME_INVALID');
    expect(counted.total()).toBe(0);
  });

  it('the cache never serves across tenants: 1,000 interleaved reads across 50 tenants', async () => {
    const tenants: Tenant[] = [];
    const expected = new Map<string, string>();
    for (let i = 0; i < 50; i++) tenants.push(await issuer.tenant(tid(`c${i}`)));
    // Seed in small parallel groups to keep the server responsive.
    for (let i = 0; i < tenants.length; i += 10) {
      await Promise.all(
        tenants.slice(i, i + 10).map(async (t) => {
          const v = `value-of-${t.id}-${Math.random().toString(36).slice(2, 10)}`;
          expected.set(t.id, v);
          await seed(t, 'api_key', v);
        }),
      );
    }
    const counted = counting(provider);
    const inj = secretsInjector({ provider: counted, maxEntries: 1000 });
    const p = inj.provider();
    let seed32 = 12345;
    const rand = () => {
      seed32 = (seed32 * 1103515245 + 12345) & 0x7fffffff;
      return seed32;
    };
    const reads: { tenant: Tenant }[] = [];
    for (let i = 0; i < 1000; i++) reads.push({ tenant: tenants[rand() % tenants.length] as Tenant });
    let checked = 0;
    // 20 waves of 50 concurrent reads, tenants interleaved within each wave.
    for (let w = 0; w < 1000; w += 50) {
      await Promise.all(
        reads.slice(w, w + 50).map(async ({ tenant }) => {
          const call = callFor(tenant, ['api_key']);
          const v = await p.forCall(call).get('api_key');
          expect(v).toBe(expected.get(tenant.id));
          checked++;
        }),
      );
    }
    expect(checked).toBe(1000);
    // Each tenant was fetched exactly once (single flight + cache), so the cache really served
    // the other reads — and every one of those was checked above.
    expect(counted.counts.get).toBe(new Set(reads.map((r) => r.tenant.id)).size);
  });

  it('concurrent misses for one key make one fetch; other tenants are not joined', async () => {
    const a = await issuer.tenant(tid('sfa'));
    const b = await issuer.tenant(tid('sfb'));
    await seed(a, 'k', 'single-flight-a');
    await seed(b, 'k', 'single-flight-b');
    const counted = counting(provider);
    counted.delay = 50;
    const p = secretsInjector({ provider: counted }).provider();
    const out = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        p
          .forCall(callFor(i % 2 ? b : a, ['k']))
          .get('k')
          .then((v) => [i, v] as const),
      ),
    );
    for (const [i, v] of out) expect(v).toBe(i % 2 ? 'single-flight-b' : 'single-flight-a');
    expect(counted.counts.get).toBe(2);
  });

  it('rotation: refresh returns the new value; without refresh the old one is served at most TTL long', async () => {
    const t = await issuer.tenant(tid('rot'));
    await seed(t, 'k', 'rotation-old-value');
    const ttl = 400;
    // The cache reads the test's clock, so the reads below sit at exact points of the TTL however
    // long the real calls take (a wall-clock version failed under a loaded CI machine's timing).
    let clock = 1_000_000;
    const counted = counting(provider);
    const inj = secretsInjector({ provider: counted, ttl, now: () => clock });
    const p = inj.provider();
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-old-value');
    await seed(t, 'k', 'rotation-new-value');
    counted.reset();
    // Until TTL after the fetch: still the old value, from the cache (no fetch).
    clock += ttl - 1;
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-old-value');
    expect(counted.counts.get ?? 0).toBe(0);
    // At TTL: fetched again, the new value. The old one was served at most TTL long.
    clock += 1;
    expect(await p.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-new-value');
    expect(counted.counts.get).toBe(1);

    // refresh: a long TTL, the value changes, refresh fetches it at once; one fetch per call.
    const inj2 = secretsInjector({ provider: counted, ttl: 3_600_000 });
    const p2 = inj2.provider();
    expect(await p2.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-new-value');
    await seed(t, 'k', 'rotation-third-value');
    expect(await p2.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-new-value');
    counted.reset();
    const call = callFor(t, ['k']);
    const s = p2.forCall(call);
    expect(await s.refresh('k')).toBe('rotation-third-value');
    expect(await s.refresh('k')).toBe('rotation-third-value');
    expect(counted.counts.get).toBe(1);
    expect(call.redactions.has('rotation-third-value')).toBe(true);
    // the refreshed value is what later calls get from the cache
    expect(await p2.forCall(callFor(t, ['k'])).get('k')).toBe('rotation-third-value');
    expect(counted.counts.get).toBe(1);
    // concurrent refreshes from several calls share one fetch
    counted.reset();
    counted.delay = 30;
    await Promise.all(Array.from({ length: 10 }, () => p2.forCall(callFor(t, ['k'])).refresh('k')));
    expect(counted.counts.get).toBe(1);
  });

  it('DSAR: export lists names only, delete erases only this tenant', async () => {
    const a = await issuer.tenant(tid('dsar'));
    const b = await issuer.tenant(tid('dsar-2')); // shares a string prefix with a
    await seed(a, 'mail_api_key', 'dsar-a-mail-value');
    await seed(a, 'crm_token', 'dsar-a-crm-value');
    await seed(b, 'mail_api_key', 'dsar-b-mail-value');
    // A look-alike path differing only in case: AWS's name filter is case-insensitive.
    const upper = `tenants/${a.id.toUpperCase()}/mail_api_key`;
    await client.send(new CreateSecretCommand({ Name: upper, SecretString: 'upper-case-lookalike' }));
    created.push(upper);
    const inj = secretsInjector({ provider });
    const exported = await inj.exportTenant(a);
    expect(exported).toEqual({ tenant_id: a.id, secrets: [{ name: 'crm_token' }, { name: 'mail_api_key' }] });
    expect(JSON.stringify(exported)).not.toContain('value');
    // warm the cache, then erase
    const s = inj.provider().forCall(callFor(a, ['mail_api_key']));
    expect(await s.get('mail_api_key')).toBe('dsar-a-mail-value');
    const del = await inj.deleteTenant(a);
    expect(del).toEqual({ tenant_id: a.id, deleted: ['crm_token', 'mail_api_key'] });
    expect((await inj.exportTenant(a)).secrets).toEqual([]);
    const gone = await rejection(
      inj
        .provider()
        .forCall(callFor(a, ['mail_api_key']))
        .get('mail_api_key'),
    );
    expect(gone.code).toBe('SECRET_NOT_FOUND'); // not served from the cache after erasure
    // b and the look-alike are untouched
    expect(
      await inj
        .provider()
        .forCall(callFor(b, ['mail_api_key']))
        .get('mail_api_key'),
    ).toBe('dsar-b-mail-value');
    expect((await inj.exportTenant(b)).secrets).toEqual([{ name: 'mail_api_key' }]);
  });
});
