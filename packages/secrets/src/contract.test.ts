/**
 * The shared adapter contract's isolation suite (`@tenantscope/testkit/adapter`) on the Secrets
 * Manager provider the other suites resolve (moto, LocalStack or the protocol double), plus the
 * deprecated names.
 */
import { GetSecretValueCommand, ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import type { Tenant } from '@tenantscope/core';
import { codeOf, createTestIssuer } from '@tenantscope/testkit';
import { testAdapter } from '@tenantscope/testkit/adapter';
import { describe, expect, inject, it } from 'vitest';
import { awsSecretsManager } from './aws.ts';
import {
  ScopedSecrets,
  SECRET_ERROR_CODES,
  SECRETS_ERROR_CODES,
  type SecretNameRecord,
  SecretsInjector,
  scopedSecrets,
  secretError,
  secretsError,
  secretsInjector,
  type TenantSecrets,
} from './index.ts';
import { runId, smClient } from './test-helpers.ts';

const sm = inject('secretsManager');
const client = smClient(sm);
const secrets = scopedSecrets({ provider: awsSecretsManager({ client }), ttl: 0 });
const run = runId();

testAdapter<TenantSecrets, SecretNameRecord>('secrets', async () => {
  const issuer = await createTestIssuer();
  const tenants = [await issuer.tenant(`${run}-acme`), await issuer.tenant(`${run}-globex`)] as const;
  const tenantOf = (handle: TenantSecrets): Tenant => tenants.find((t) => t.id === handle.tenantId) as Tenant;
  return {
    adapter: secrets,
    tenants,
    put: async (handle, key, value) => {
      await secrets.unscopedAdmin(tenantOf(handle)).put(key, value);
    },
    get: async (handle, key) => {
      const code = await codeOf(() => handle.get(key));
      if (code === 'SECRET_NOT_FOUND') return undefined;
      return handle.get(key);
    },
    list: async (handle) => (await secrets.exportTenant(tenantOf(handle))).secrets.map((s) => s.name),
    remove: async (handle, key) => {
      await secrets.unscopedAdmin(tenantOf(handle)).delete(key);
    },
    raw: async () => {
      const out: { tenant: string; key: string; value: string }[] = [];
      let NextToken: string | undefined;
      do {
        const page = await client.send(
          new ListSecretsCommand({
            Filters: [{ Key: 'name', Values: [`tenants/${run}-`] }],
            MaxResults: 100,
            NextToken,
          }),
        );
        for (const s of page.SecretList ?? []) {
          const [, tenant = '', ...rest] = String(s.Name).split('/');
          const got = await client.send(new GetSecretValueCommand({ SecretId: s.Name })).catch(() => undefined);
          if (got?.SecretString !== undefined) out.push({ tenant, key: rest.join('/'), value: got.SecretString });
        }
        NextToken = page.NextToken;
      } while (NextToken);
      return out;
    },
    itemKey: (r) => r.name,
    itemValue: (r) => r.name,
  };
});

describe('contract names', () => {
  it('the deprecated names are the new ones', () => {
    expect(secretsInjector).toBe(scopedSecrets);
    expect(SecretsInjector).toBe(ScopedSecrets);
    expect(SECRET_ERROR_CODES).toBe(SECRETS_ERROR_CODES);
    expect(secretError).toBe(secretsError);
    const e = secretsError('SECRET_NOT_FOUND', 'no such secret');
    expect([e.code, e.status]).toEqual(['SECRET_NOT_FOUND', 404]);
  });

  it('forTenant with declared names reads only those (SECRET_NOT_DECLARED, nothing fetched)', async () => {
    const issuer = await createTestIssuer();
    const t = await issuer.tenant(`${run}-initech`);
    await secrets.unscopedAdmin(t).put('api-key', 'initech-key-value');
    const handle = secrets.forTenant(t, { declared: ['other'] });
    expect(handle.tenantId).toBe(t.id);
    expect(await codeOf(() => handle.get('api-key'))).toBe('SECRET_NOT_DECLARED');
    expect(await secrets.forTenant(t, { declared: ['api-key'] }).get('api-key')).toBe('initech-key-value');
    expect((await secrets.tenantData(t).delete()).after.total).toBe(0);
  });
});
