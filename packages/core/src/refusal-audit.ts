import type { AuditEvent } from './audit.ts';
import { TenantScopeError } from './errors.ts';

export interface UnauthenticatedAuditOptions {
  /** Unauthenticated refusals written per window; past it they are only counted. Default 100. */
  maxPerWindow?: number;
  /** Window length in ms. Default 60,000. */
  windowMs?: number;
}

/**
 * Rate-bounds the unauthenticated audit stream, which anyone can write to by sending a bad token.
 * Per fixed window, the first `maxPerWindow` refusals are written as they come; the rest are
 * counted, and when the window closes one `auth_failure_summary` event records how many were left
 * out (`details.suppressed`, with a count per reason code). So an anonymous client writes at most
 * `maxPerWindow + 1` events per window, and the trail still says how many requests it refused.
 * Authenticated refusals never pass through here: they go to their tenant's stream, each one.
 */
export class UnauthenticatedAuditBound {
  readonly #write: (event: AuditEvent) => Promise<void>;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #windowStart = 0;
  #written = 0;
  #suppressed = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    write: (event: AuditEvent) => Promise<void>,
    options: UnauthenticatedAuditOptions = {},
    now: () => number = Date.now,
  ) {
    this.#write = write;
    this.#max = options.maxPerWindow ?? 100;
    this.#windowMs = options.windowMs ?? 60_000;
    if (!Number.isSafeInteger(this.#max) || this.#max < 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'unauthenticatedAudit.maxPerWindow must be a non-negative integer');
    }
    if (!Number.isSafeInteger(this.#windowMs) || this.#windowMs < 1000) {
      throw new TenantScopeError('INVALID_CONFIG', 'unauthenticatedAudit.windowMs must be an integer of at least 1000');
    }
    this.#now = now;
  }

  /** Writes the event, or counts it when the window's cap is reached. Resolves when written or counted. */
  async record(event: AuditEvent): Promise<void> {
    const now = this.#now();
    if (now >= this.#windowStart + this.#windowMs) {
      await this.flush();
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written < this.#max) {
      this.#written++;
      return this.#write(event);
    }
    const reason = event.reason ?? 'UNKNOWN';
    // Reasons are error codes (a short fixed list), so this map stays small; cap it anyway.
    const key = this.#suppressed.has(reason) || this.#suppressed.size < 64 ? reason : 'OTHER';
    this.#suppressed.set(key, (this.#suppressed.get(key) ?? 0) + 1);
    if (!this.#timer) {
      this.#timer = setTimeout(
        () => void this.flush().catch(() => undefined),
        this.#windowStart + this.#windowMs - now,
      );
      this.#timer.unref();
    }
  }

  /** Writes the pending summary now, if any refusal was left out (called at window end and on close). */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#suppressed.size === 0) return;
    const counts = this.#suppressed;
    this.#suppressed = new Map();
    let total = 0;
    const details: Record<string, number | string> = {
      window_start: new Date(this.#windowStart).toISOString(),
      window_ms: this.#windowMs,
    };
    for (const [reason, n] of counts) {
      total += n;
      details[`reason_${reason}`] = n;
    }
    details.suppressed = total;
    await this.#write({
      timestamp: new Date(this.#now()).toISOString(),
      tenant_id: null,
      session_id: null,
      subject: null,
      event_type: 'auth_failure_summary',
      tool_name: null,
      args_hash: null,
      result_status: 'denied',
      reason: 'AUDIT_RATE_BOUNDED',
      latency_ms: 0,
      ip_address: null,
      details,
    });
  }
}
