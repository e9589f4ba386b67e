import { type AuditEvent, type AuditSink, BoundedLru, TenantScopeError } from '@tenantscope/core';

/** What an alert is about. */
export type AnomalyKind = 'denial_burst' | 'tenant_override' | 'call_rate_spike' | 'auth_failures';

export interface AnomalyAlert {
  kind: AnomalyKind;
  /** The tenant whose stream the trigger came from (null: unauthenticated). */
  tenant_id: string | null;
  /** For `auth_failures`: the token subject, or the client address when no subject was known. */
  key: string | null;
  /** Events counted in the window (or bucket) when the alert fired. */
  count: number;
  /** The threshold that was reached. */
  threshold: number;
  /** Window (or bucket) length, ms. */
  window_ms: number;
  /** For `call_rate_spike`: the tenant's baseline calls per bucket. */
  baseline?: number;
  /** ISO-8601 time the alert fired. */
  at: string;
}

/** A sliding-window rule: `threshold` matching events within `windowMs` raise one alert per window. */
export interface WindowRule {
  /** Events within the window that raise an alert. */
  threshold?: number;
  /** Window length, ms. After an alert, the same key is quiet for one window. */
  windowMs?: number;
}

export interface AnomalyOptions {
  /** Denied calls per tenant. Default 10 in 60 s. */
  denials?: WindowRule | false;
  /** Authentication failures per token subject (per client address when the subject is unknown). Default 5 in 5 min. */
  authFailures?: WindowRule | false;
  /** Alert on every tenant-override attempt. Default true. */
  tenantOverride?: boolean;
  /** Tool calls per tenant per bucket against an exponentially weighted baseline of earlier buckets. */
  callRate?:
    | {
        /** Bucket length, ms. Default 60 s. */
        bucketMs?: number;
        /** A bucket above `factor` × baseline is a spike. Default 5. */
        factor?: number;
        /** And above this many calls. Default 100. */
        minCalls?: number;
        /** Buckets observed before alerts start. Default 5. */
        warmupBuckets?: number;
        /** EWMA weight of the newest bucket. Default 0.2. */
        smoothing?: number;
      }
    | false;
  /** Most keys (tenants, subjects) tracked per rule; the least recently seen are forgotten. Default 10,000. */
  maxKeys?: number;
  /** Receives every alert. Errors go to `onError`; they never fail the audited call. */
  onAlert?: (alert: AnomalyAlert) => void | Promise<void>;
  /** POSTs every alert as JSON. */
  webhook?: {
    url: string;
    /** Extra headers (e.g. an authorization header). */
    headers?: Record<string, string>;
    /** Default 5 s. */
    timeoutMs?: number;
    /** Most deliveries in flight; more are dropped and reported to `onError`. Default 16. */
    maxInFlight?: number;
  };
  /** Hook and webhook failures. */
  onError?: (err: unknown) => void;
  /** Clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

interface WindowState {
  times: number[];
  quietUntil: number;
}
interface RateRule {
  bucketMs: number;
  factor: number;
  minCalls: number;
  warmupBuckets: number;
  smoothing: number;
}
interface RateState {
  bucket: number;
  count: number;
  baseline: number;
  seen: number;
  alerted: boolean;
}

/** Watches audit events per tenant and returns the alerts each one raises. All state is bounded. */
export class AnomalyDetector {
  readonly #denials: Required<WindowRule> | null;
  readonly #auth: Required<WindowRule> | null;
  readonly #override: boolean;
  readonly #rate: RateRule | null;
  readonly #now: () => number;
  readonly #denialState: BoundedLru<string, WindowState>;
  readonly #authState: BoundedLru<string, WindowState>;
  readonly #rateState: BoundedLru<string, RateState>;

  constructor(options: AnomalyOptions = {}) {
    const max = options.maxKeys ?? 10_000;
    this.#denials =
      options.denials === false ? null : { threshold: 10, windowMs: 60_000, ...stripUndefined(options.denials) };
    this.#auth =
      options.authFailures === false
        ? null
        : { threshold: 5, windowMs: 300_000, ...stripUndefined(options.authFailures) };
    for (const r of [this.#denials, this.#auth]) {
      if (r && (!(r.threshold >= 1) || !(r.windowMs > 0))) {
        throw new TenantScopeError('INVALID_CONFIG', 'anomaly windows need threshold >= 1 and windowMs > 0');
      }
    }
    this.#override = options.tenantOverride ?? true;
    this.#rate =
      options.callRate === false
        ? null
        : {
            bucketMs: 60_000,
            factor: 5,
            minCalls: 100,
            warmupBuckets: 5,
            smoothing: 0.2,
            ...stripUndefined(options.callRate),
          };
    this.#now = options.now ?? Date.now;
    this.#denialState = new BoundedLru(max);
    this.#authState = new BoundedLru(max);
    this.#rateState = new BoundedLru(max);
  }

  /** Keys tracked per rule (each at most `maxKeys`). */
  get trackedKeys(): { denials: number; authFailures: number; callRate: number } {
    return { denials: this.#denialState.size, authFailures: this.#authState.size, callRate: this.#rateState.size };
  }

  /** Feeds one event; returns the alerts it raised (usually none). */
  observe(event: AuditEvent): AnomalyAlert[] {
    const now = this.#now();
    const tenant = event.tenant_id;
    const stream = tenant ?? '_unauthenticated';
    const alerts: AnomalyAlert[] = [];
    if (event.event_type === 'anomaly_alert') return alerts;
    if (this.#override && event.event_type === 'tenant_override') {
      alerts.push({
        kind: 'tenant_override',
        tenant_id: tenant,
        key: null,
        count: 1,
        threshold: 1,
        window_ms: 0,
        at: iso(now),
      });
    }
    if (this.#denials && event.result_status === 'denied' && event.event_type !== 'auth_failure') {
      const n = slide(this.#denialState, stream, this.#denials, now);
      if (n !== null) alerts.push(windowAlert('denial_burst', tenant, null, n, this.#denials, now));
    }
    if (this.#auth && event.event_type === 'auth_failure') {
      const who = event.subject ?? (event.ip_address ? `ip:${event.ip_address}` : 'unknown');
      const n = slide(this.#authState, `${stream}\u0000${who}`, this.#auth, now);
      if (n !== null) alerts.push(windowAlert('auth_failures', tenant, who, n, this.#auth, now));
    }
    if (this.#rate && event.event_type === 'tool_call' && tenant !== null) {
      const a = this.#observeRate(stream, tenant, now);
      if (a) alerts.push(a);
    }
    return alerts;
  }

  #observeRate(stream: string, tenant: string, now: number): AnomalyAlert | null {
    const r = this.#rate as RateRule;
    const bucket = Math.floor(now / r.bucketMs);
    let s = this.#rateState.get(stream);
    if (!s) {
      s = { bucket, count: 0, baseline: 0, seen: 0, alerted: false };
      this.#rateState.set(stream, s);
    }
    if (bucket > s.bucket) {
      // Fold the finished bucket, then any empty ones (at most a warm-up's worth), into the baseline.
      const fold = (c: number) => {
        s.baseline = s.seen === 0 ? c : s.baseline + r.smoothing * (c - s.baseline);
        s.seen++;
      };
      fold(s.count);
      for (let b = s.bucket + 1; b < bucket && b < s.bucket + 1 + r.warmupBuckets * 4; b++) fold(0);
      s.bucket = bucket;
      s.count = 0;
      s.alerted = false;
    }
    s.count++;
    const threshold = Math.max(r.minCalls, Math.ceil(r.factor * s.baseline));
    if (!s.alerted && s.seen >= r.warmupBuckets && s.count >= threshold) {
      s.alerted = true;
      return {
        kind: 'call_rate_spike',
        tenant_id: tenant,
        key: null,
        count: s.count,
        threshold,
        window_ms: r.bucketMs,
        baseline: Math.round(s.baseline * 100) / 100,
        at: iso(now),
      };
    }
    return null;
  }
}

function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Records one hit; returns the count when the window reaches the threshold outside a quiet period. */
function slide(
  map: BoundedLru<string, WindowState>,
  key: string,
  rule: Required<WindowRule>,
  now: number,
): number | null {
  let s = map.get(key);
  if (!s) {
    s = { times: [], quietUntil: 0 };
    map.set(key, s);
  }
  s.times.push(now);
  const from = now - rule.windowMs;
  while (s.times.length > 0 && (s.times[0] as number) <= from) s.times.shift();
  if (s.times.length > rule.threshold) s.times.splice(0, s.times.length - rule.threshold); // bounded
  if (s.times.length >= rule.threshold && now >= s.quietUntil) {
    s.quietUntil = now + rule.windowMs;
    return s.times.length;
  }
  return null;
}

function windowAlert(
  kind: AnomalyKind,
  tenant: string | null,
  key: string | null,
  count: number,
  rule: Required<WindowRule>,
  now: number,
): AnomalyAlert {
  return { kind, tenant_id: tenant, key, count, threshold: rule.threshold, window_ms: rule.windowMs, at: iso(now) };
}

/** The audit event recording an alert, in the same tenant's stream. */
export function alertEvent(alert: AnomalyAlert, cause: AuditEvent): AuditEvent {
  return {
    timestamp: alert.at,
    tenant_id: alert.tenant_id,
    session_id: cause.session_id,
    subject: cause.subject,
    event_type: 'anomaly_alert',
    tool_name: null,
    args_hash: null,
    result_status: 'ok',
    reason: alert.kind.toUpperCase(),
    latency_ms: 0,
    ip_address: cause.ip_address,
    details: {
      count: alert.count,
      threshold: alert.threshold,
      window_ms: alert.window_ms,
      ...(alert.baseline === undefined ? {} : { baseline: alert.baseline }),
    },
  } as AuditEvent;
}

/**
 * An AuditSink that writes through to `sink` and watches the events for anomalies. Each alert is
 * written to the same tenant's stream as an `anomaly_alert` event (before the call's write
 * resolves) and handed to `onAlert` and the webhook (which never delay or fail the call).
 */
export function withAnomalyDetection(
  sink: AuditSink,
  options: AnomalyOptions = {},
): AuditSink & { detector: AnomalyDetector; idle(): Promise<void> } {
  const detector = new AnomalyDetector(options);
  const onError = options.onError ?? (() => undefined);
  const pending = new Set<Promise<unknown>>();
  let inFlight = 0;
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const notify = (alert: AnomalyAlert) => {
    if (options.onAlert) {
      track(
        (async () => {
          try {
            await options.onAlert?.(alert);
          } catch (err) {
            onError(err);
          }
        })(),
      );
    }
    const hook = options.webhook;
    if (hook) {
      if (inFlight >= (hook.maxInFlight ?? 16)) {
        onError(new TenantScopeError('AUDIT_WEBHOOK_DROPPED', 'too many alert deliveries in flight', { status: 503 }));
        return;
      }
      inFlight++;
      track(
        fetch(hook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...hook.headers },
          body: JSON.stringify(alert),
          signal: AbortSignal.timeout(hook.timeoutMs ?? 5000),
        })
          .then(async (res) => {
            await res.arrayBuffer().catch(() => undefined);
            if (!res.ok) throw new TenantScopeError('AUDIT_WEBHOOK_FAILED', `alert webhook answered ${res.status}`);
          })
          .catch(onError)
          .finally(() => {
            inFlight--;
          }),
      );
    }
  };
  return {
    detector,
    async write(event) {
      const alerts = detector.observe(event);
      for (const a of alerts) notify(a);
      await sink.write(event);
      for (const a of alerts) await sink.write(alertEvent(a, event));
    },
    async close() {
      await this.idle();
      await sink.close?.();
    },
    /** Resolves when every hook call and webhook delivery started so far has finished. */
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
