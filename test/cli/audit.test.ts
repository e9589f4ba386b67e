/**
 * The CLI on the Postgres audit log (`dsar.audit.postgres`), through the real bin: the deletion
 * certificate is chained into the audit table once, `audit verify` reads it as the auditor role, and
 * `audit export` copies the stored chain into JSONL files that `verifyJsonl` and `verify-export`
 * check offline. One scratch tenant database and one audit database for the whole file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyJsonl } from '@tenantscope/audit';
import { type PostgresAuditLog, setupPostgresAudit } from '@tenantscope/audit/postgres';
import { pg } from '@tenantscope/postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type PgFixture, pgFixture, TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { runCli, writeJson, writeSigningKey } from './helpers.ts';

const SLOW = 180_000;
const TENANTS = ['acme', 'globex', 'initech'];
const SUFFIX = randomBytes(4).toString('hex');
const AUDIT_DB = `ts_auditcli_${SUFFIX}`;
const PREFIX = `ts_auditcli_${SUFFIX}`;
let dir: string;
let fx: PgFixture;
let log: PostgresAuditLog;
let su: pg.Pool;
let config: string;
let publicKey: string;

function auditUrl(): string {
  const u = new URL(inject('databaseUrl'));
  u.pathname = `/${AUDIT_DB}`;
  return u.toString();
}

/** Events of one stream, read by the superuser (not through the CLI). */
async function events(stream: string): Promise<{ event_type: string }[]> {
  const r = await su.query<{ event: string }>(
    'SELECT event FROM tenantscope_audit.events WHERE stream = $1 ORDER BY seq',
    [stream],
  );
  return r.rows.map((x) => JSON.parse(x.event));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsauditcli-'));
  fx = await pgFixture('auditcli', TENANTS, 3);
  log = await setupPostgresAudit({
    adminUrl: inject('databaseUrl'),
    database: AUDIT_DB,
    rolePrefix: PREFIX,
    pooler: TEST_POOLER,
  });
  su = new pg.Pool({ connectionString: auditUrl(), max: 1 });
  publicKey = (await writeSigningKey(dir)).publicKey;
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: TENANTS,
      postgres: { url: fx.db.ownerUrl, tables: [{ name: 'notes' }, { name: 'customers' }], pooler: fx.pooler },
      // The URL logs in as the admin; every write runs as the writer, every read as the auditor.
      audit: { postgres: { url: auditUrl(), writerRole: `${PREFIX}_writer`, auditorRole: `${PREFIX}_auditor` } },
      signingKey: 'signing.pem',
    },
  });
});

afterAll(async () => {
  await log?.close();
  await su?.end();
  await fx?.close();
  const root = new pg.Client({ connectionString: inject('databaseUrl') });
  await root.connect();
  try {
    await root.query(`DROP DATABASE IF EXISTS ${AUDIT_DB} WITH (FORCE)`);
    for (const r of ['owner', 'writer', 'auditor']) await root.query(`DROP ROLE IF EXISTS ${PREFIX}_${r}`);
  } finally {
    await root.end();
  }
  await rm(dir, { recursive: true, force: true });
});

describe('tenantscope with the Postgres audit log', () => {
  it(
    'tenant delete chains its certificate into the audit table once; audit verify reads it (exit 0)',
    async () => {
      const del = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config, '--json']);
      expect(del.code, del.stderr).toBe(0);
      expect(JSON.parse(del.stdout).certificate.stores.postgres).toEqual({
        notes: { before: 0, after: 0 },
        customers: { before: 3, after: 0 },
      });
      const certs = () => events('acme').then((e) => e.filter((x) => x.event_type === 'dsar_deletion_certificate'));
      expect(await certs()).toHaveLength(1);
      // The adapter's own dsar events (count, delete) went to the same table.
      expect((await events('acme')).map((e) => e.event_type)).toContain('dsar_delete');

      const again = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).certificateWritten).toBe(false);
      expect(await certs()).toHaveLength(1);

      const v = await runCli(['audit', 'verify', '--config', config, '--json']);
      expect(v.code, v.stderr).toBe(0);
      const report = JSON.parse(v.stdout);
      expect(report.ok).toBe(true);
      expect(report.streams.map((s: { stream: string }) => s.stream)).toContain('acme');
    },
    SLOW,
  );

  it(
    'audit export copies the stored chain: JSONL files that verify offline, a signed manifest, one-file form',
    async () => {
      // tenant export copies the tenant's stream out of the audit table too.
      const ex = join(dir, 'globex-export');
      const te = await runCli(['tenant', 'export', 'globex', '--out', ex, '--config', config, '--json']);
      expect(te.code, te.stderr).toBe(0);
      const copied = JSON.parse(te.stdout).counts.audit;
      expect(copied.verified).toBe(1);
      expect(copied.events).toBeGreaterThan(0);
      expect(JSON.parse(await readFile(join(ex, 'audit', 'verification.json'), 'utf8')).ok).toBe(true);
      const out = join(dir, 'audit-acme');
      const r = await runCli(['audit', 'export', '--tenant', 'acme', '--out', out, '--config', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const stored = await events('acme');
      expect(JSON.parse(r.stdout)).toMatchObject({ streams: ['acme'], events: stored.length, ok: true });
      expect((await readdir(join(out, 'acme'))).every((f) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(f))).toBe(true);
      const offline = await verifyJsonl({ dir: out, anchors: { record: async () => {}, list: async () => [] } });
      expect(offline.ok).toBe(true);
      expect(offline.streams[0]?.events).toBe(stored.length);
      expect(JSON.parse(await readFile(join(out, 'verification.json'), 'utf8')).ok).toBe(true);
      expect((await runCli(['verify-export', out, '--public-key', publicKey])).code).toBe(0);

      // Every stream, and the one-file form of one stream.
      const all = join(dir, 'audit-all');
      const ra = await runCli(['audit', 'export', '--out', all, '--config', config, '--json']);
      expect(ra.code, ra.stderr).toBe(0);
      expect(JSON.parse(ra.stdout).streams).toEqual(expect.arrayContaining(['acme', 'globex']));
      const file = join(dir, 'acme.jsonl');
      const rf = await runCli(['audit', 'export', '--tenant', 'acme', '--out', file, '--config', config]);
      expect(rf.code, rf.stderr).toBe(0);
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(stored.length);
      expect(lines.map((l) => JSON.parse(l).event.event_type)).toEqual(stored.map((e) => e.event_type));
      const noTenant = await runCli(['audit', 'export', '--out', join(dir, 'x.jsonl'), '--config', config]);
      expect(noTenant.code).toBe(2);
    },
    SLOW,
  );

  it(
    'an edited event in the table: audit verify and audit export exit 1; the export records the break',
    async () => {
      const c = await su.connect();
      try {
        await c.query('BEGIN');
        await c.query('SET LOCAL session_replication_role = replica');
        await c.query(
          `UPDATE tenantscope_audit.events SET event = replace(event, '"result_status":"ok"', '"result_status":"error"')
            WHERE stream = 'globex' AND seq = 1`,
        );
        await c.query('COMMIT');
      } finally {
        c.release();
      }
      const v = await runCli(['audit', 'verify', '--tenant', 'globex', '--config', config, '--json']);
      expect(v.code).toBe(1);
      expect(JSON.parse(v.stdout).streams[0].break.seq).toBe(1);
      expect((await runCli(['audit', 'verify', '--tenant', 'initech', '--config', config])).code).toBe(0);
      const out = join(dir, 'audit-globex');
      const r = await runCli(['audit', 'export', '--tenant', 'globex', '--out', out, '--config', config, '--json']);
      expect(r.code).toBe(1);
      expect(JSON.parse(await readFile(join(out, 'verification.json'), 'utf8')).ok).toBe(false);
      const offline = await verifyJsonl({ dir: out, anchors: { record: async () => {}, list: async () => [] } });
      expect(offline.ok).toBe(false);
    },
    SLOW,
  );
});
