/**
 * A tenant's scoped client (@tenantscope/postgres) reads only its own audit stream, through the
 * audit table's row-level security policy on tenantscope.current_tenant_id().
 */
import { migrateAuditSchema, PostgresAuditSink } from '@tenantscope/audit/postgres';
import { CURRENT_TENANT_SQL, installTenantScope, scopedPool } from '@tenantscope/postgres';
import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { type AuditTestDb, createAuditTestDb, sampleEvent } from './pg.ts';

let db: AuditTestDb;
let scoped: ReturnType<typeof scopedPool>;
const issuer = await createTestIssuer();

beforeAll(async () => {
  db = await createAuditTestDb(inject('databaseUrl'), 'rls', { extraRoles: ['app'] });
  const { bindingKey } = await installTenantScope(db.owner, { appRole: db.roles.app });
  await migrateAuditSchema(db.owner, {
    writer: db.roles.writer,
    auditor: db.roles.auditor,
    tenantReader: { role: db.roles.app as string, tenantIdSql: CURRENT_TENANT_SQL },
  });
  const sink = new PostgresAuditSink({ pool: db.writer });
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 30; i++) writes.push(sink.write(sampleEvent(['acme', 'globex', 'initech'][i % 3] as string, i)));
  writes.push(sink.write(sampleEvent(null, 99, { event_type: 'auth_failure' })));
  await Promise.all(writes);
  await sink.close();
  scoped = scopedPool({ connectionString: db.urlFor('app'), max: 2 }, { bindingKey, pooler: TEST_POOLER });
});
afterAll(async () => {
  await scoped?.end();
  await db?.close();
});

describe('audit stream under RLS', () => {
  it("a tenant's scoped client reads only its own stream", async () => {
    for (const t of ['acme', 'globex']) {
      const mine = scoped.forTenant(await issuer.tenant(t));
      const r = await mine.query<{ stream: string; n: number }>(
        'SELECT stream, count(*)::int AS n FROM tenantscope_audit.events GROUP BY stream',
      );
      expect(r.rows).toEqual([{ stream: t, n: 10 }]);
      // asking for another tenant's stream by name returns nothing
      const other = t === 'acme' ? 'globex' : 'acme';
      const o = await mine.query('SELECT count(*)::int AS n FROM tenantscope_audit.events WHERE stream = $1', [other]);
      expect(o.rows[0]).toEqual({ n: 0 });
      const u = await mine.query(
        "SELECT count(*)::int AS n FROM tenantscope_audit.events WHERE stream = '_unauthenticated'",
      );
      expect(u.rows[0]).toEqual({ n: 0 });
    }
  });

  it('the app role with no bound tenant sees no audit rows, and cannot write or change any', async () => {
    const raw = new pg.Client({ connectionString: db.urlFor('app') });
    await raw.connect();
    try {
      expect((await raw.query('SELECT count(*)::int AS n FROM tenantscope_audit.events')).rows[0]).toEqual({ n: 0 });
      for (const sql of [
        "INSERT INTO tenantscope_audit.events (event) VALUES ('{}')",
        "UPDATE tenantscope_audit.events SET event = '{}'",
        'DELETE FROM tenantscope_audit.events',
        'SELECT * FROM tenantscope_audit.anchors',
      ]) {
        await expect(raw.query(sql)).rejects.toMatchObject({ code: '42501' });
      }
    } finally {
      await raw.end();
    }
  });
});
