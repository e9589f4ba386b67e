/**
 * Operating the example across replicas: revoking a subject (shared in PostgreSQL), and the admin
 * endpoint an operator uses from outside to revoke a token or a subject and to halt or resume a
 * tenant. Every replica reads the same tables, so an action through one replica holds on all.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type AuditEvent,
  type AuditSink,
  DEFAULT_TENANT_ID_PATTERN,
  type RevocationStore,
  TenantScopeError,
  type TokenVerifier,
  UnauthenticatedAuditBound,
} from '@tenantscope/core';
import type { pg } from '@tenantscope/postgres';

type Pool = InstanceType<typeof pg.Pool>;

/**
 * Revoked subjects (`tenant`, `sub`): every request of that subject is refused until `until`
 * (default: one token lifetime from now, so every token it held when revoked has expired).
 * "Not revoked" answers are cached for `cacheMs`, which bounds how long another replica may
 * still accept the subject.
 */
export class SubjectRevocations {
  readonly #pool: Pool;
  readonly #table: string;
  readonly #cacheMs: number;
  readonly #clear = new Map<string, number>();

  constructor(pool: Pool, options: { schema?: string; cacheMs?: number } = {}) {
    const schema = options.schema ?? 'tenantscope_state';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('schema must be a lowercase identifier');
    this.#pool = pool;
    this.#table = `"${schema}".revoked_subjects`;
    this.#cacheMs = options.cacheMs ?? 100;
  }

  /** DDL (idempotent; run with the replica-state migration). */
  sql(): string {
    return `create table if not exists ${this.#table} (
  tenant_id text not null, subject text not null, until timestamptz not null, primary key (tenant_id, subject));`;
  }

  async isRevoked(tenant: string, subject: string): Promise<boolean> {
    const key = `${tenant}\u0000${subject}`;
    const until = this.#clear.get(key);
    if (until !== undefined && until > Date.now()) return false;
    const r = await this.#pool.query(
      `select 1 from ${this.#table} where tenant_id = $1 and subject = $2 and until > now()`,
      [tenant, subject],
    );
    const revoked = (r.rowCount ?? 0) > 0;
    if (revoked) this.#clear.delete(key);
    else if (this.#cacheMs > 0) {
      if (this.#clear.size >= 10_000) this.#clear.clear(); // bounded
      this.#clear.set(key, Date.now() + this.#cacheMs);
    }
    return revoked;
  }

  async revoke(tenant: string, subject: string, until: Date): Promise<void> {
    await this.#pool.query(
      `insert into ${this.#table} (tenant_id, subject, until) values ($1, $2, $3)
       on conflict (tenant_id, subject) do update set until = greatest(excluded.until, ${this.#table}.until)`,
      [tenant, subject, until],
    );
    this.#clear.delete(`${tenant}\u0000${subject}`);
  }

  async restore(tenant: string, subject: string): Promise<void> {
    await this.#pool.query(`delete from ${this.#table} where tenant_id = $1 and subject = $2`, [tenant, subject]);
  }
}

/** A verifier that also refuses revoked subjects (AUTH_REVOKED, audited in the subject's tenant stream). */
export function withSubjectRevocation(verifier: TokenVerifier, subjects: SubjectRevocations): TokenVerifier {
  return {
    audience: verifier.audience,
    issuers: verifier.issuers,
    async verify(token) {
      const tenant = await verifier.verify(token);
      if (await subjects.isRevoked(tenant.id, tenant.subject)) {
        throw new TenantScopeError('AUTH_REVOKED', 'this subject was revoked', {
          details: { tenantHint: tenant.id, subjectHint: tenant.subject },
        });
      }
      return tenant;
    },
  };
}

export interface AdminOptions {
  /** The admin credential (`TENANTSCOPE_ADMIN_TOKEN`). Unset: the admin endpoint does not exist (404). */
  token: string | undefined;
  revocations: RevocationStore;
  subjects: SubjectRevocations;
  /**
   * Where every admin decision is recorded: an action in the affected tenant's stream (a token
   * revocation, which names no tenant, in the stream with no tenant); a refusal after the admin
   * credential matched in that stream too; a refusal of a wrong or missing credential in the
   * unauthenticated stream, rate-bounded like the MCP endpoint's. An action whose event cannot
   * be written answers 500.
   */
  audit: AuditSink;
  /** Longest token lifetime (s): a revoked subject stays revoked this long by default. */
  maxTokenLifetimeSeconds?: number;
  log: (record: Record<string, unknown>) => void;
}

const MAX_BODY = 16 * 1024;

/**
 * `POST /admin/<action>` with `Authorization: Bearer <TENANTSCOPE_ADMIN_TOKEN>` and a JSON body:
 * `revoke-token {jti, expires_at?}`, `revoke-subject {tenant, subject, until?}`,
 * `restore-subject {tenant, subject}`, `halt {tenant, reason?}`, `resume {tenant}`.
 * Returns false for any other path. Bad input is a 400 and changes nothing.
 */
export function adminHandler(o: AdminOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const expected = o.token ? digest(o.token) : undefined;
  const lifetime = o.maxTokenLifetimeSeconds ?? 3600;
  const unauthenticated = new UnauthenticatedAuditBound((e) => o.audit.write(e));
  return async (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith('/admin/')) return false;
    if (!expected) return send(res, 404, { error: 'not_found' });
    const started = performance.now();
    const action = path.slice('/admin/'.length).slice(0, 64);
    const event = (tenant: string | null, status: AuditEvent['result_status'], reason: string | null): AuditEvent => ({
      timestamp: new Date().toISOString(),
      tenant_id: tenant,
      session_id: null,
      subject: tenant === null && status === 'denied' && reason === 'ADMIN_AUTH' ? null : 'operator',
      event_type: 'admin_action',
      tool_name: null,
      args_hash: null,
      result_status: status,
      reason,
      latency_ms: Math.round((performance.now() - started) * 1000) / 1000,
      ip_address: req.socket.remoteAddress ?? null,
      details: { action },
    });
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    // Constant time: both sides are SHA-256 digests of equal length.
    if (!m?.[1] || !timingSafeEqual(digest(m[1]), expected)) {
      await unauthenticated.record(event(null, 'denied', 'ADMIN_AUTH')).catch(() => undefined);
      res.setHeader('WWW-Authenticate', 'Bearer realm="tenantscope-admin"');
      return send(res, 401, { error: 'unauthorized' });
    }
    // The operator is authenticated from here on: each refusal is written, never rate-bounded.
    const refuse = async (status: number, reason: string, body: Record<string, unknown>, tenant: unknown = null) => {
      const t = typeof tenant === 'string' && DEFAULT_TENANT_ID_PATTERN.test(tenant) ? tenant : null;
      await o.audit.write(event(t, 'denied', reason));
      return send(res, status, body);
    };
    try {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        return await refuse(405, 'METHOD_NOT_ALLOWED', { error: 'method_not_allowed' });
      }
      let body: Record<string, unknown>;
      try {
        body = await readBody(req);
      } catch (err) {
        return await refuse(400, 'BAD_REQUEST', { error: 'bad_request', message: (err as Error).message });
      }
      let done: Record<string, unknown> | undefined;
      try {
        done = await run(action, body);
      } catch (err) {
        if (err instanceof TenantScopeError && err.status === 400) {
          return await refuse(400, err.code, { error: 'bad_request', message: err.message }, body.tenant);
        }
        throw err;
      }
      if (!done) return await refuse(404, 'NOT_FOUND', { error: 'not_found' });
      await o.audit.write(event(typeof done.tenant === 'string' ? done.tenant : null, 'ok', null));
      o.log({ level: 'warn', time: new Date().toISOString(), msg: `admin: ${action}`, ...done });
      return send(res, 200, { ok: true, action, ...done });
    } catch (err) {
      o.log({ level: 'error', time: new Date().toISOString(), msg: `admin: ${action} failed`, error: String(err) });
      return send(res, 500, { error: 'internal', message: 'the admin request failed or could not be audited' });
    }
  };

  async function run(action: string, b: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    switch (action) {
      case 'revoke-token': {
        const jti = text(b.jti, 'jti', 256);
        const until = date(b.expires_at, 'expires_at') ?? new Date(Date.now() + 24 * 3600_000);
        await o.revocations.revokeToken(jti, until);
        return { jti, expires_at: until.toISOString() };
      }
      case 'revoke-subject': {
        const tenant = tenantId(b.tenant);
        const subject = text(b.subject, 'subject', 256);
        const until = date(b.until, 'until') ?? new Date(Date.now() + lifetime * 1000);
        await o.subjects.revoke(tenant, subject, until);
        return { tenant, subject, until: until.toISOString() };
      }
      case 'restore-subject': {
        const tenant = tenantId(b.tenant);
        const subject = text(b.subject, 'subject', 256);
        await o.subjects.restore(tenant, subject);
        return { tenant, subject };
      }
      case 'halt': {
        const tenant = tenantId(b.tenant);
        const reason = b.reason === undefined ? 'halted by an operator' : text(b.reason, 'reason', 1000);
        await o.revocations.haltTenant(tenant, reason);
        return { tenant };
      }
      case 'resume': {
        const tenant = tenantId(b.tenant);
        await o.revocations.resumeTenant(tenant);
        return { tenant };
      }
      default:
        return undefined;
    }
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function bad(message: string): never {
  throw new TenantScopeError('INVALID_ARGUMENT', message);
}

function text(v: unknown, name: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    bad(`${name} must be a string of 1 to ${max} characters`);
  return v;
}

function tenantId(v: unknown): string {
  if (typeof v !== 'string' || !DEFAULT_TENANT_ID_PATTERN.test(v)) bad('tenant must be a tenant id');
  return v;
}

function date(v: unknown, name: string): Date | undefined {
  if (v === undefined) return undefined;
  const d = typeof v === 'string' ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) bad(`${name} must be an ISO 8601 date`);
  return d;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('body must be a JSON object');
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): true {
  const t = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(t);
  return true;
}
