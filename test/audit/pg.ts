/**
 * Per-test-file PostgreSQL for the audit suites: a fresh database and fresh roles (owner,
 * writer, auditor) made from the superuser URL the test services provide.
 */
import { randomBytes } from 'node:crypto';
import { type AuditEvent, argsHash } from '@tenantscope/core';
import pg from 'pg';
import { migrateAuditSchema } from '../../packages/audit/src/postgres/index.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** Superuser URL of the suites' PostgreSQL (test/setup/services/postgres.ts). */
    databaseUrl: string;
  }
}

export interface AuditTestDb {
  name: string;
  /** Superuser pool on the new database (for tamper drills). */
  admin: pg.Pool;
  /** The owning role's pool (migrations, purge). */
  owner: pg.Pool;
  writer: pg.Pool;
  auditor: pg.Pool;
  /** Role names: owner, writer, auditor and any `extraRoles`. */
  roles: Record<string, string> & { owner: string; writer: string; auditor: string };
  urls: { admin: string; owner: string; writer: string; auditor: string };
  /** Connection string for a role by its short name (e.g. an extra role). */
  urlFor(role: string): string;
  close(): Promise<void>;
}

export async function createAuditTestDb(
  adminUrl: string,
  label: string,
  options: { poolSize?: number; extraRoles?: string[] } = {},
): Promise<AuditTestDb> {
  const tag = `${label}_${randomBytes(4).toString('hex')}`;
  const name = `audit_${tag}`;
  const roles: Record<string, string> = { owner: `${tag}_owner`, writer: `${tag}_writer`, auditor: `${tag}_auditor` };
  for (const r of options.extraRoles ?? []) roles[r] = `${tag}_${r}`;
  const password = randomBytes(12).toString('hex');
  const root = new pg.Client({ connectionString: adminUrl });
  await root.connect();
  try {
    await root.query(`CREATE DATABASE ${name}`);
    for (const r of Object.values(roles)) await root.query(`CREATE ROLE ${r} LOGIN PASSWORD '${password}'`);
    await root.query(`GRANT ALL ON DATABASE ${name} TO ${roles.owner}`);
    for (const r of Object.values(roles)) await root.query(`GRANT CONNECT ON DATABASE ${name} TO ${r}`);
  } finally {
    await root.end();
  }
  const url = (user: string | null) => {
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    if (user) {
      u.username = user;
      u.password = password;
    }
    return u.toString();
  };
  const max = options.poolSize ?? 8;
  const admin = new pg.Pool({ connectionString: url(null), max: 4 });
  await admin.query(`ALTER SCHEMA public OWNER TO ${roles.owner}`);
  const owner = new pg.Pool({ connectionString: url(roles.owner as string), max: 4 });
  await migrateAuditSchema(owner, { writer: roles.writer, auditor: roles.auditor });
  const writer = new pg.Pool({ connectionString: url(roles.writer as string), max });
  const auditor = new pg.Pool({ connectionString: url(roles.auditor as string), max: 4 });
  for (const p of [admin, owner, writer, auditor]) p.on('error', () => undefined); // idle drops at teardown
  return {
    name,
    admin,
    owner,
    writer,
    auditor,
    roles: roles as AuditTestDb['roles'],
    urls: {
      admin: url(null),
      owner: url(roles.owner as string),
      writer: url(roles.writer as string),
      auditor: url(roles.auditor as string),
    },
    urlFor: (role) => url(roles[role] as string),
    async close() {
      await Promise.allSettled([admin.end(), owner.end(), writer.end(), auditor.end()]);
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        for (const r of Object.values(roles)) await c.query(`DROP ROLE IF EXISTS ${r}`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A realistic tool-call event for `tenant`. */
export function sampleEvent(tenant: string | null, i: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    timestamp: new Date().toISOString(),
    tenant_id: tenant,
    session_id: 'sess-0123456789abcdef0123456789abcdef0123456',
    subject: `agent-${tenant ?? 'anon'}`,
    event_type: 'tool_call',
    tool_name: 'search_contacts',
    args_hash: argsHash({ q: `query ${i}` }),
    result_status: 'ok',
    reason: null,
    latency_ms: 1.234,
    ip_address: '10.1.2.3',
    request_id: String(i),
    ...overrides,
  };
}
