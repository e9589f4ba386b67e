/**
 * `tenantscope keys create|list|revoke` through the real bin, in a child process, against a real
 * PostgreSQL (a scratch database). The keys it prints are checked with core's verifier over the
 * same table, the way a server with `withApiKeys` + `PostgresApiKeyStore` checks them.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiKeyTokenId, type TokenVerifier, withApiKeys } from '@tenantscope/core';
import { PostgresApiKeyStore, PostgresRevocationStore, pg } from '@tenantscope/postgres';
import { codeOf } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { runCli, writeJson } from './helpers.ts';

/** Each case runs the bin a few times; a loaded CI machine takes seconds per start. */
const SLOW = 180_000;
const PEPPER = 'pepper-for-the-keys-cli-test-0123456789';
let db: ScratchDatabase;
let pool: pg.Pool;
let config: string;
let store: PostgresApiKeyStore;
let verifier: TokenVerifier;
const env = { TS_TEST_KEY_PEPPER: PEPPER };
const jwt: TokenVerifier = {
  audience: 'http://localhost/mcp',
  issuers: ['https://issuer.test'],
  verify: async () => Promise.reject(new Error('not a key')),
};

beforeAll(async () => {
  db = await createScratchDatabase(inject('databaseUrl'), 'keyscli');
  pool = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  const dir = await mkdtemp(join(tmpdir(), 'ts-keys-cli-'));
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    keys: {
      postgres: { url: db.ownerUrl },
      schema: 'keys_cli',
      revocationSchema: 'keys_cli',
      pepperEnv: 'TS_TEST_KEY_PEPPER',
      tenants: ['acme', 'globex', 'initech'],
    },
  });
  store = new PostgresApiKeyStore(pool, { schema: 'keys_cli' });
  const revocations = new PostgresRevocationStore(pool, { schema: 'keys_cli', cacheMs: 0 });
  await revocations.migrate();
  verifier = withApiKeys(jwt, { store, pepper: PEPPER, revocations });
}, SLOW);
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

async function rows(): Promise<Record<string, unknown>[]> {
  return (await pool.query('select * from keys_cli.api_keys order by created_at')).rows;
}

describe('tenantscope keys', () => {
  it(
    'create prints the key once; the table keeps a peppered hash; the key verifies as its tenant with its tools',
    async () => {
      const r = await runCli(
        [
          'keys',
          'create',
          'acme',
          '--tools',
          'whoami,query_*',
          '--expires',
          '30d',
          '--label',
          'ci',
          '--json',
          '--config',
          config,
        ],
        env,
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, unknown> & { key: string; id: string };
      expect(out.key).toMatch(/^tsk_acme_[A-Za-z0-9_-]{43}$/);
      expect(out).toMatchObject({ tenant: 'acme', tools: ['whoami', 'query_*'], label: 'ci', status: 'active' });
      expect(out).not.toHaveProperty('hash');
      const expires = Date.parse(out.expires_at as string) - Date.now();
      expect(expires).toBeGreaterThan(29.9 * 86_400_000);
      expect(expires).toBeLessThanOrEqual(30 * 86_400_000);
      const stored = await rows();
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ id: out.id, tenant_id: 'acme', hash_algorithm: 'hmac-sha256' });
      expect(JSON.stringify(stored)).not.toContain(out.key.slice(-31));
      const t = await verifier.verify(out.key);
      expect({ id: t.id, tools: t.allowedTools }).toEqual({ id: 'acme', tools: ['whoami', 'query_*'] });
      // Without the pepper the stored hash cannot even be checked.
      expect(await codeOf(withApiKeys(jwt, { store }).verify(out.key))).toBe('AUTH_API_KEY_INVALID');

      // The human form shows the key once; list never shows a key or a hash.
      const human = await runCli(['keys', 'create', 'globex', '--expires', 'never', '--config', config], env);
      expect(human.code).toBe(0);
      const globexKey = /^(tsk_globex_\S{43})$/m.exec(human.stdout)?.[1] as string;
      expect(globexKey).toBeDefined();
      expect(human.stdout).toContain('shown once');
      const list = await runCli(['keys', 'list', '--config', config], env);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^ID\s+TENANT\s+STATUS/);
      for (const secret of [out.key, globexKey]) expect(list.stdout).not.toContain(secret.slice(-31));
      for (const r of await rows()) expect(list.stdout).not.toContain(r.hash as string);
      const acmeOnly = await runCli(['keys', 'list', 'acme', '--json', '--config', config], env);
      expect((JSON.parse(acmeOnly.stdout) as { tenant: string }[]).map((k) => k.tenant)).toEqual(['acme']);
    },
    SLOW,
  );

  it(
    'revoke refuses the key from then on, in the table and in the shared revocation table',
    async () => {
      const created = await runCli(['keys', 'create', 'initech', '--json', '--config', config], env);
      const { key, id, expires_at } = JSON.parse(created.stdout) as { key: string; id: string; expires_at: string };
      expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(89 * 86_400_000); // the 90d default
      expect(await codeOf(verifier.verify(key))).toBe('ok');
      const r = await runCli(['keys', 'revoke', id, '--json', '--config', config], env);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id, tenant: 'initech', status: 'revoked' });
      expect(await codeOf(verifier.verify(key))).toBe('AUTH_API_KEY_REVOKED');
      const revoked = await pool.query('select 1 from keys_cli.revoked_tokens where jti = $1', [apiKeyTokenId(id)]);
      expect(revoked.rowCount).toBe(1);
    },
    SLOW,
  );

  it(
    'bad input exits 2 naming the problem, and changes nothing',
    async () => {
      const before = await rows();
      const cases: [string[], Record<string, string>, RegExp][] = [
        [['keys', 'create', 'umbrella'], env, /CLI_UNKNOWN_TENANT/],
        [['keys', 'create', 'acme', '--expires', '30 days'], env, /--expires/],
        [['keys', 'create', 'acme', '--tools', 'who ami'], env, /tools must be a list/],
        [['keys', 'create', 'acme'], { TS_TEST_KEY_PEPPER: 'short' }, /keys\.pepperEnv/],
        [['keys', 'revoke', 'AAAAAAAAAAAA'], env, /CLI_UNKNOWN_KEY/],
      ];
      for (const [args, e, message] of cases) {
        const r = await runCli([...args, '--config', config], e);
        expect({ args, code: r.code }).toEqual({ args, code: 2 });
        expect(r.stderr).toMatch(message);
      }
      expect(await rows()).toEqual(before);
    },
    SLOW,
  );
});
