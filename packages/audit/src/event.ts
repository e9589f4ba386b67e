import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { type AuditEvent, canonicalJson, streamName, TenantScopeError } from '@tenantscope/core';

/** Minimum retention a purge accepts, in days (JSONL and Postgres alike). */
export const MIN_RETENTION_DAYS = 365;
/** Default retention, in days. */
export const DEFAULT_RETENTION_DAYS = 400;

/**
 * What of the caller's identity goes into a stored event. The log is immutable, so anything
 * personal written into it cannot later be erased: the defaults keep as little as is useful.
 */
export interface PrivacyOptions {
  /**
   * The token subject. `keep` (default) stores it as is: a token subject names an agent or
   * service principal, not a person, in the setups tenantscope targets. `pseudonymize` stores
   * `hmac:` + HMAC-SHA256(pseudonymKey, subject) (needs `pseudonymKey`); `drop` stores null.
   */
  subject?: 'keep' | 'pseudonymize' | 'drop';
  /**
   * The client address. `truncate` (default) keeps the network only (IPv4 /24, IPv6 /48);
   * `keep` stores it whole; `drop` stores null.
   */
  ipAddress?: 'keep' | 'truncate' | 'drop';
  /** Secret key for `pseudonymize`. Rotating it makes old and new pseudonyms unlinkable. */
  pseudonymKey?: string | Buffer;
}

/** Fields an event may carry into storage. Anything else is dropped, so no argument value can slip in. */
const FIELDS = [
  'timestamp',
  'tenant_id',
  'session_id',
  'subject',
  'event_type',
  'tool_name',
  'args_hash',
  'result_status',
  'reason',
  'latency_ms',
  'ip_address',
  'request_id',
  'details',
] as const;

const ARGS_HASH = /^sha256:[0-9a-f]{64}$/;

/** An event as audit stores it: an `AuditEvent` plus optional `details` (numbers and short strings) for audit's own events. */
export type StoredEvent = AuditEvent & { details?: Record<string, string | number | boolean | null> };

/**
 * Validates and minimises an event before it is chained: unknown fields are dropped, an
 * `args_hash` that is not a `sha256:` hash is refused, and identity fields follow `privacy`.
 * Throws `INVALID_ARGUMENT` for an event that cannot be stored (e.g. an invalid tenant id).
 */
export function prepareEvent(
  event: AuditEvent,
  privacy: PrivacyOptions = {},
): { stream: string; event: StoredEvent; canonical: string } {
  if (typeof event !== 'object' || event === null) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'audit event must be an object');
  }
  const stream = streamName(event);
  if (typeof event.timestamp !== 'string' || Number.isNaN(Date.parse(event.timestamp))) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'audit event needs an ISO-8601 timestamp');
  }
  if (typeof event.event_type !== 'string' || event.event_type.length === 0 || event.event_type.length > 64) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'audit event needs an event_type');
  }
  if (event.args_hash != null && !ARGS_HASH.test(event.args_hash)) {
    throw new TenantScopeError(
      'INVALID_ARGUMENT',
      'args_hash must be "sha256:<hex>"; argument values are never stored',
    );
  }
  const out: Record<string, unknown> = {};
  const src = event as unknown as Record<string, unknown>;
  for (const f of FIELDS) if (src[f] !== undefined) out[f] = src[f];
  out.subject = minimiseSubject(event.subject, privacy);
  out.ip_address = minimiseIp(event.ip_address, privacy.ipAddress ?? 'truncate');
  if (out.details !== undefined) {
    const d = out.details;
    if (typeof d !== 'object' || d === null || Array.isArray(d)) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'details must be a flat object');
    }
    for (const v of Object.values(d)) {
      if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) {
        throw new TenantScopeError('INVALID_ARGUMENT', 'details values must be scalars');
      }
    }
  }
  const stored = out as unknown as StoredEvent;
  return { stream, event: stored, canonical: canonicalJson(stored) };
}

function minimiseSubject(subject: string | null | undefined, privacy: PrivacyOptions): string | null {
  if (subject == null) return null;
  const mode = privacy.subject ?? 'keep';
  if (mode === 'keep') return subject;
  if (mode === 'drop') return null;
  if (!privacy.pseudonymKey) {
    throw new TenantScopeError('INVALID_CONFIG', 'privacy.subject "pseudonymize" needs a pseudonymKey');
  }
  return `hmac:${createHmac('sha256', privacy.pseudonymKey).update(subject).digest('hex').slice(0, 32)}`;
}

function minimiseIp(ip: string | null | undefined, mode: 'keep' | 'truncate' | 'drop'): string | null {
  if (ip == null || mode === 'drop') return null;
  if (mode === 'keep') return ip;
  const v4 = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (isIP(v4) === 4) {
    const p = v4.split('.');
    return `${p[0]}.${p[1]}.${p[2]}.0/24`;
  }
  if (isIP(ip) === 6) {
    const full = expandIpv6(ip);
    return `${full.slice(0, 3).join(':')}::/48`;
  }
  return null; // not an address: store nothing rather than something unexpected
}

function expandIpv6(ip: string): string[] {
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = Array(Math.max(0, 8 - h.length - t.length)).fill('0');
  return [...h, ...(ip.includes('::') ? fill : []), ...t].map((x) => x.toLowerCase() || '0');
}

/** The audit event a retention purge appends to the purged stream (both sinks write the same one). */
export function purgeEvent(options: {
  tenant: string | null;
  actor?: string;
  now: Date;
  details: Record<string, string | number | boolean | null>;
}): StoredEvent {
  return {
    timestamp: options.now.toISOString(),
    tenant_id: options.tenant,
    session_id: null,
    subject: options.actor ?? 'tenantscope-retention',
    event_type: 'audit_purge',
    tool_name: null,
    args_hash: null,
    result_status: 'ok',
    reason: 'RETENTION',
    latency_ms: 0,
    ip_address: null,
    details: options.details,
  };
}
