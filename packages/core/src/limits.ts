import { TenantScopeError } from './errors.ts';
import { BoundedLru } from './lru.ts';

/**
 * Per-tenant call limits: a token bucket (calls per minute) and a concurrency cap. State is held
 * per tenant in a bounded LRU. With several replicas, supply a shared implementation of
 * `CallLimiter` (the interface is what the server uses).
 */
export interface CallLimiter {
  /** Takes a slot for one call, or throws RATE_LIMITED. Returns the function that frees the slot. */
  acquire(tenantId: string, limits: { callsPerMinute: number; maxConcurrentCalls: number }): Promise<() => void>;
}

interface Bucket {
  tokens: number;
  updated: number;
  inFlight: number;
}

export class MemoryCallLimiter implements CallLimiter {
  readonly #buckets: BoundedLru<string, Bucket>;
  readonly #now: () => number;

  constructor(options: { maxTenants?: number; now?: () => number } = {}) {
    this.#buckets = new BoundedLru(options.maxTenants ?? 10_000);
    this.#now = options.now ?? Date.now;
  }

  async acquire(tenantId: string, limits: { callsPerMinute: number; maxConcurrentCalls: number }): Promise<() => void> {
    const now = this.#now();
    let b = this.#buckets.get(tenantId);
    if (!b) {
      b = { tokens: limits.callsPerMinute, updated: now, inFlight: 0 };
      this.#buckets.set(tenantId, b);
    }
    const refill = ((now - b.updated) / 60_000) * limits.callsPerMinute;
    b.tokens = Math.min(limits.callsPerMinute, b.tokens + refill);
    b.updated = now;
    if (b.inFlight >= limits.maxConcurrentCalls) {
      throw new TenantScopeError('RATE_LIMITED', 'too many concurrent calls for this tenant');
    }
    if (b.tokens < 1) throw new TenantScopeError('RATE_LIMITED', 'call rate limit reached for this tenant');
    b.tokens -= 1;
    b.inFlight += 1;
    const bucket = b;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        bucket.inFlight -= 1;
      }
    };
  }
}
