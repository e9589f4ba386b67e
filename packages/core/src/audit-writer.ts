import type { AuditEvent, AuditSink } from './audit.ts';
import { argsHash } from './audit.ts';
import type { Diag } from './diagnostics.ts';
import { TenantScopeError } from './errors.ts';
import { isRecord } from './http.ts';
import type { Tenant } from './tenant.ts';

/** An audit event before it is written: the writer stamps `timestamp` and rounds `latency_ms`. */
export type AuditRecord = Omit<AuditEvent, 'timestamp'>;

/** The authenticated caller of one request: whose stream its refusals are written to. */
export interface Caller {
  readonly tenant: Tenant;
  readonly ip: string | null;
  /** `performance.now()` when the request arrived. */
  readonly started: number;
}

/** The one error of an event that could not be written (the request it belongs to fails closed). */
export function auditWriteFailed(cause: unknown): TenantScopeError {
  return new TenantScopeError('AUDIT_WRITE_FAILED', 'the request could not be audited', { cause });
}

/**
 * The server's only path to the audit sink. `write` resolves once the event landed; when the sink
 * fails it logs the cause and throws `AUDIT_WRITE_FAILED` (or, with `onFailure: 'allow'`, carries on).
 */
export class AuditWriter {
  readonly #sink: AuditSink;
  readonly #allow: boolean;
  readonly #diag: Diag;

  constructor(sink: AuditSink, onFailure: 'deny' | 'allow' | undefined, diag: Diag) {
    this.#sink = sink;
    this.#allow = onFailure === 'allow';
    this.#diag = diag;
  }

  /** Writes through the sink, or through `via` (e.g. the rate bound of the unauthenticated stream). */
  async write(record: AuditRecord, via?: (event: AuditEvent) => Promise<void>): Promise<void> {
    const event: AuditEvent = { timestamp: new Date().toISOString(), ...record, latency_ms: round(record.latency_ms) };
    try {
      await (via ? via(event) : this.#sink.write(event));
    } catch (err) {
      this.#diag('error', 'audit write failed', err, { tenant_id: event.tenant_id });
      if (!this.#allow) throw auditWriteFailed(err); // fail closed: no answer without its event
    }
  }
}

/**
 * The refusal of an authenticated request, in the caller's stream: `request_denied`, or `tool_call`
 * (denied) when the body was a tools/call, so every refused call is in the trail.
 */
export function refusalRecord(caller: Caller, reason: string, body?: unknown): AuditRecord {
  const call = isRecord(body) && body.method === 'tools/call' && isRecord(body.params) ? body.params : undefined;
  return {
    tenant_id: caller.tenant.id,
    subject: caller.tenant.subject,
    ip_address: caller.ip,
    session_id: null, // a refused request's session header is not trusted
    event_type: call ? 'tool_call' : 'request_denied',
    tool_name: call && typeof call.name === 'string' ? call.name.slice(0, 128) : null,
    args_hash: call ? safeHash(call.arguments) : null,
    result_status: 'denied',
    reason,
    latency_ms: performance.now() - caller.started,
    request_id: isRecord(body) && (typeof body.id === 'string' || typeof body.id === 'number') ? String(body.id) : null,
  };
}

/** A request that could not be given a session (or, stateless, a tool set). */
export function sessionDeniedRecord(caller: Caller, reason: string): AuditRecord {
  return {
    tenant_id: caller.tenant.id,
    subject: caller.tenant.subject,
    ip_address: caller.ip,
    session_id: null,
    event_type: 'session_denied',
    tool_name: null,
    args_hash: null,
    result_status: 'denied',
    reason,
    latency_ms: performance.now() - caller.started,
  };
}

/** The arguments' hash, or null when they cannot be hashed (the refusal is still recorded). */
export function safeHash(args: unknown): string | null {
  try {
    return argsHash(args ?? {});
  } catch {
    return null;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
