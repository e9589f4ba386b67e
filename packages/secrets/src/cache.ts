import { BoundedLru } from '@tenantscope/core';
import type { VersionSelector } from './provider.ts';

/** Cache and backend counters. */
export interface SecretsStats {
  hits: number;
  misses: number;
  /** Requests sent to the provider (a batch counts once). */
  fetches: number;
  refreshes: number;
  size: number;
}

export interface SecretCacheOptions {
  /** How long a value is served, in ms; 0 stores nothing (every read fetches, concurrent reads still share one). */
  ttl: number;
  /** Most values kept across all tenants; least recently used are evicted. */
  maxEntries: number;
  /** Clock in ms. */
  now: () => number;
}

interface Entry {
  value: string;
  expiresAt: number;
  /** Fetch generation: a slower, older fetch never overwrites a newer value. */
  gen: number;
}

interface Inflight {
  promise: Promise<string>;
  refresh: boolean;
}

/**
 * The injector's value cache, keyed by (tenant, name, version): bounded LRU, TTL, one fetch in
 * flight per key (concurrent readers share it), and counters. Values reach it only through the
 * loaders the caller passes, so it never talks to a provider itself.
 */
export class SecretCache {
  readonly ttl: number;
  readonly #now: () => number;
  readonly #entries: BoundedLru<string, Entry>;
  readonly #inflight = new Map<string, Inflight>();
  #gen = 0;
  readonly #counters = { hits: 0, misses: 0, fetches: 0, refreshes: 0 };

  constructor(options: SecretCacheOptions) {
    this.ttl = options.ttl;
    this.#now = options.now;
    this.#entries = new BoundedLru(options.maxEntries);
  }

  stats(): SecretsStats {
    return { ...this.#counters, size: this.#entries.size };
  }

  /** Counts a provider request that bypasses the cache (list, put, delete). */
  countFetch(): void {
    this.#counters.fetches++;
  }

  /** A fresh cached value, else the fetch in flight for the key, else a new fetch through `load`. */
  read(tenantId: string, name: string, version: VersionSelector, load: () => Promise<string>): Promise<string> {
    const key = cacheKey(tenantId, name, version);
    const hit = this.#entries.get(key);
    if (hit) {
      if (hit.expiresAt > this.#now()) {
        this.#counters.hits++;
        return Promise.resolve(hit.value);
      }
      this.#entries.delete(key);
    }
    this.#counters.misses++;
    const inflight = this.#inflight.get(key);
    if (inflight) return inflight.promise;
    return this.#fetch(key, false, load);
  }

  /**
   * Drops the current value of (tenant, name) and fetches it again; a refresh already in flight
   * for the key is shared.
   */
  refresh(tenantId: string, name: string, load: () => Promise<string>): Promise<string> {
    const key = cacheKey(tenantId, name, {});
    this.#counters.refreshes++;
    const inflight = this.#inflight.get(key);
    if (inflight?.refresh) return inflight.promise;
    this.#entries.delete(key);
    return this.#fetch(key, true, load);
  }

  /**
   * Current values of several names of one tenant. Hits are served, fetches in flight are shared,
   * and the rest go to the provider in ONE request: `loadBatch` gets every missing name with what
   * `resolve` made of it, and `pick` takes each name's value out of the answer (or throws).
   */
  async readMany<R, B>(
    tenantId: string,
    names: readonly string[],
    resolve: (name: string) => R,
    loadBatch: (missing: readonly { name: string; ref: R }[]) => Promise<B>,
    pick: (batch: B, name: string, ref: R) => string,
  ): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const waits: Promise<void>[] = [];
    const missing: { name: string; ref: R; key: string }[] = [];
    for (const name of names) {
      const key = cacheKey(tenantId, name, {});
      const hit = this.#entries.get(key);
      if (hit && hit.expiresAt > this.#now()) {
        this.#counters.hits++;
        out.set(name, hit.value);
        continue;
      }
      if (hit) this.#entries.delete(key);
      this.#counters.misses++;
      const inflight = this.#inflight.get(key);
      if (inflight) {
        waits.push(inflight.promise.then((v) => void out.set(name, v)));
        continue;
      }
      missing.push({ name, ref: resolve(name), key });
    }
    if (missing.length > 0) {
      this.#counters.fetches++;
      const batch = loadBatch(missing);
      for (const m of missing) {
        const gen = ++this.#gen;
        const promise = batch.then((answer) => this.#store(m.key, gen, pick(answer, m.name, m.ref)));
        this.#track(m.key, { promise, refresh: false });
        waits.push(promise.then((v) => void out.set(m.name, v)));
      }
    }
    await Promise.all(waits);
    return out;
  }

  /** Drops every cached value of one tenant; returns how many. */
  dropTenant(tenantId: string): number {
    return this.#dropPrefix(`${tenantId}\u0000`);
  }

  /** Drops every cached version of one tenant's name. */
  dropName(tenantId: string, name: string): number {
    return this.#dropPrefix(`${tenantId}\u0000${name}\u0000`);
  }

  #dropPrefix(head: string): number {
    let n = 0;
    for (const [key] of [...this.#entries.entries()]) {
      if (key.startsWith(head)) {
        this.#entries.delete(key);
        n++;
      }
    }
    return n;
  }

  #fetch(key: string, refresh: boolean, load: () => Promise<string>): Promise<string> {
    const gen = ++this.#gen;
    this.#counters.fetches++;
    const promise = (async () => this.#store(key, gen, await load()))();
    this.#track(key, { promise, refresh });
    return promise;
  }

  #store(key: string, gen: number, value: string): string {
    const current = this.#entries.peek(key);
    if (this.ttl > 0 && (!current || current.gen < gen)) {
      this.#entries.set(key, { value, expiresAt: this.#now() + this.ttl, gen });
    }
    return value;
  }

  #track(key: string, entry: Inflight): void {
    this.#inflight.set(key, entry);
    const clear = () => {
      if (this.#inflight.get(key) === entry) this.#inflight.delete(key);
    };
    entry.promise.then(clear, clear);
  }
}

function cacheKey(tenantId: string, name: string, version: VersionSelector): string {
  const v = version.versionId ? `id:${version.versionId}` : version.versionStage ? `stage:${version.versionStage}` : '';
  return `${tenantId}\u0000${name}\u0000${v}`;
}
