import { type CallLimiter, type RevocationStore, TenantScopeError } from '@tenantscope/core';
import pg, { type Pool } from 'pg';

/**
 * Shared state for several server replicas, in PostgreSQL: revoked token ids, halted tenants and
 * per-tenant call rates. Every replica points at the same tables, so a revocation or a halt made
 * through one replica is refused by all of them.
 */
export interface ReplicaStateOptions {
  /** Schema holding the tables. Default `tenantscope_state`. Created by `migrate()`. */
  schema?: string;
  /**
   * How long (ms) a replica may reuse a "not revoked / not halted" answer before asking again.
   * Bounds how stale a replica can be after a revocation elsewhere. Default 1000; 0 asks every time.
   */
  cacheMs?: number;
  /** Most answers cached per replica (LRU-ish: the map is cleared when full). Default 10,000. */
  maxCached?: number;
  /**
   * A connection for `LISTEN` (revocations, halts and resumes made by any replica reach this one
   * within milliseconds instead of after `cacheMs`). It must be direct or through a SESSION-mode
   * pooler: a transaction pooler (PgBouncer transaction mode, Supavisor port 6543) does not deliver
   * notifications. Without it, or while it is down (it reconnects by itself), replicas fall back to
   * polling: a cached answer lives at most `cacheMs`. Writers always notify.
   */
  listenConnectionString?: string;
  /** Further client options for the LISTEN connection (ssl, …); `listenConnectionString` wins. */
  listenClientConfig?: pg.ClientConfig;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

function schemaOf(options: ReplicaStateOptions): string {
  const s = options.schema ?? 'tenantscope_state';
  if (!SCHEMA.test(s)) throw new TenantScopeError('INVALID_CONFIG', 'schema must be a lowercase identifier');
  return `"${s}"`;
}

/** DDL for the replica-state tables. Idempotent. */
export function replicaStateSql(options: ReplicaStateOptions = {}): string {
  const s = schemaOf(options);
  return `
create schema if not exists ${s};
create table if not exists ${s}.revoked_tokens (
  jti text primary key check (length(jti) between 1 and 256),
  expires_at timestamptz not null
);
create index if not exists revoked_tokens_expiry on ${s}.revoked_tokens (expires_at);
create table if not exists ${s}.halted_tenants (
  tenant_id text primary key,
  reason text not null,
  halted_at timestamptz not null default now()
);
create table if not exists ${s}.rate_buckets (
  tenant_id text primary key,
  tokens double precision not null,
  updated_at timestamptz not null,
  last_granted boolean not null
);`;
}

class TtlCache {
  readonly #entries = new Map<string, { value: boolean; until: number }>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  constructor(ms: number, max: number) {
    this.#ttlMs = ms;
    this.#maxEntries = max;
  }
  get(key: string): boolean | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }
  set(key: string, value: boolean): void {
    if (this.#ttlMs <= 0) return;
    if (this.#entries.size >= this.#maxEntries) this.#entries.clear();
    this.#entries.set(key, { value, until: Date.now() + this.#ttlMs });
  }
  delete(key: string): void {
    this.#entries.delete(key);
  }
  clear(): void {
    this.#entries.clear();
  }
}

/**
 * One LISTEN connection with reconnects (bounded back-off). While it is down the store's TTL cache
 * is the fallback; on every (re)connect the cache is cleared, since notifications may have been missed.
 */
export class Listener {
  readonly #config: pg.ClientConfig;
  readonly #channel: string;
  readonly #onMessage: (payload: string) => void;
  readonly #onGap: () => void;
  #client: pg.Client | undefined;
  #closed = false;
  #backoffMs = 100;
  #timer: NodeJS.Timeout | undefined;
  /** Resolved (and emptied) each time LISTEN becomes active. */
  #waiters: (() => void)[] = [];
  listening = false;

  constructor(config: pg.ClientConfig, channel: string, onMessage: (p: string) => void, onGap: () => void) {
    this.#config = config;
    this.#channel = channel;
    this.#onMessage = onMessage;
    this.#onGap = onGap;
    void this.#connect();
  }

  /** Resolves once LISTEN is active, or after `timeoutMs`; returns whether it is. */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.listening || this.#closed) return this.listening;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#waiters.push(r)),
      new Promise((r) => {
        t = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(t);
    return this.listening;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client(this.#config);
    this.#client = client;
    const lost = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.listening = false;
      this.#onGap();
      void client.end().catch(() => undefined);
      this.#retry();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel === this.#channel && typeof n.payload === 'string') this.#onMessage(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
      if (this.#closed || this.#client !== client) {
        await client.end().catch(() => undefined);
        return;
      }
      this.listening = true;
      this.#backoffMs = 100;
      this.#onGap();
      for (const w of this.#waiters.splice(0)) w();
    } catch {
      lost();
    }
  }

  #retry(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, this.#backoffMs);
    this.#timer.unref();
    this.#backoffMs = Math.min(this.#backoffMs * 2, 5000);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    const c = this.#client;
    this.#client = undefined;
    this.listening = false;
    await c?.end().catch(() => undefined);
  }
}

/** `RevocationStore` shared by every replica through PostgreSQL. */
export class PostgresRevocationStore implements RevocationStore {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #channel: string;
  readonly #cache: TtlCache;
  readonly #listener: Listener | undefined;

  constructor(pool: Pool, options: ReplicaStateOptions = {}) {
    this.#pool = pool;
    this.#schema = schemaOf(options);
    this.#channel = this.#schema.slice(1, -1);
    this.#cache = new TtlCache(options.cacheMs ?? 1000, options.maxCached ?? 10_000);
    if (options.listenConnectionString !== undefined || options.listenClientConfig !== undefined) {
      if (options.listenConnectionString !== undefined && typeof options.listenConnectionString !== 'string') {
        throw new TenantScopeError('INVALID_CONFIG', 'listenConnectionString must be a string');
      }
      const config: pg.ClientConfig = { ...(options.listenClientConfig ?? {}) };
      if (options.listenConnectionString) config.connectionString = options.listenConnectionString;
      this.#listener = new Listener(
        config,
        this.#channel,
        (payload) => {
          // 't:<jti>', 'h:<tenant>': forget the cached answer, the next check asks the database.
          if (/^[th]:/.test(payload)) this.#cache.delete(payload);
        },
        () => this.#cache.clear(),
      );
    }
  }

  /**
   * With a LISTEN connection: waits until it listens (at most `timeoutMs`, default 5000) and says
   * whether it does. Without one: false at once (replicas poll, bounded by `cacheMs`).
   */
  async listening(timeoutMs = 5000): Promise<boolean> {
    return this.#listener ? this.#listener.ready(timeoutMs) : false;
  }

  /** Closes the LISTEN connection, if any. The pool is the caller's. */
  async close(): Promise<void> {
    await this.#listener?.close();
  }

  /** `pg_notify` on the store's channel, as a CTE tail: one statement, sent at its commit. */
  #notify(key: string): string {
    return `select pg_notify('${this.#channel}', ${key})`;
  }

  /** Creates the tables (needs a role that may create them). */
  async migrate(): Promise<void> {
    await this.#pool.query(replicaStateSql({ schema: this.#schema.slice(1, -1) }));
  }

  async isTokenRevoked(jti: string): Promise<boolean> {
    const key = `t:${jti}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const r = await this.#pool.query(
      `select 1 from ${this.#schema}.revoked_tokens where jti = $1 and expires_at > now()`,
      [jti],
    );
    const revoked = (r.rowCount ?? 0) > 0;
    // Only "not revoked" answers are cached: a revocation is never forgotten early.
    if (!revoked) this.#cache.set(key, false);
    return revoked;
  }

  async revokeToken(jti: string, expiresAt: Date): Promise<void> {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'jti must be a non-empty string of at most 256 characters');
    }
    if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'expiresAt must be a valid Date');
    }
    await this.#pool.query(
      `with w as (insert into ${this.#schema}.revoked_tokens (jti, expires_at) values ($1, $2)
       on conflict (jti) do update set expires_at = greatest(excluded.expires_at, ${this.#schema}.revoked_tokens.expires_at)
       returning 1)
       ${this.#notify(`'t:' || $1::text`)} from w`,
      [jti, expiresAt],
    );
    await this.#pool.query(`delete from ${this.#schema}.revoked_tokens where expires_at < now() - interval '1 hour'`);
    this.#cache.delete(`t:${jti}`);
  }

  async isTenantHalted(tenantId: string): Promise<boolean> {
    const key = `h:${tenantId}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const r = await this.#pool.query(`select 1 from ${this.#schema}.halted_tenants where tenant_id = $1`, [tenantId]);
    const halted = (r.rowCount ?? 0) > 0;
    if (!halted) this.#cache.set(key, false);
    return halted;
  }

  async haltTenant(tenantId: string, reason: string): Promise<void> {
    if (typeof tenantId !== 'string' || tenantId.length === 0 || typeof reason !== 'string') {
      throw new TenantScopeError('INVALID_ARGUMENT', 'haltTenant needs a tenant id and a reason');
    }
    await this.#pool.query(
      `with w as (insert into ${this.#schema}.halted_tenants (tenant_id, reason) values ($1, $2)
       on conflict (tenant_id) do update set reason = excluded.reason, halted_at = now()
       returning 1)
       ${this.#notify(`'h:' || $1::text`)} from w`,
      [tenantId, reason.slice(0, 1000)],
    );
    this.#cache.delete(`h:${tenantId}`);
  }

  async resumeTenant(tenantId: string): Promise<void> {
    await this.#pool.query(
      `with w as (delete from ${this.#schema}.halted_tenants where tenant_id = $1 returning 1)
       ${this.#notify(`'h:' || $1::text`)}`,
      [tenantId],
    );
    this.#cache.delete(`h:${tenantId}`);
  }
}

/**
 * `CallLimiter` whose per-tenant call rate (token bucket) is shared by every replica: one atomic
 * upsert per call. The concurrency cap stays per replica (in-flight calls are a local quantity).
 */
export class PostgresCallLimiter implements CallLimiter {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #inFlight = new Map<string, number>();

  constructor(pool: Pool, options: ReplicaStateOptions = {}) {
    this.#pool = pool;
    this.#schema = schemaOf(options);
  }

  async acquire(tenantId: string, limits: { callsPerMinute: number; maxConcurrentCalls: number }): Promise<() => void> {
    const inFlight = this.#inFlight.get(tenantId) ?? 0;
    if (inFlight >= limits.maxConcurrentCalls) {
      throw new TenantScopeError('RATE_LIMITED', 'too many concurrent calls for this tenant');
    }
    const cap = limits.callsPerMinute;
    // Refill by elapsed time and take one token if there is one, in one atomic upsert: the SET
    // expressions all read the row as it was, under the row lock.
    const refilled = `least($2::float8, b.tokens + extract(epoch from clock_timestamp() - b.updated_at) * $2::float8 / 60.0)`;
    const r = await this.#pool.query<{ granted: boolean }>(
      `insert into ${this.#schema}.rate_buckets as b (tenant_id, tokens, updated_at, last_granted)
         values ($1, $2::float8 - 1, clock_timestamp(), true)
       on conflict (tenant_id) do update set
         tokens = ${refilled} - case when ${refilled} >= 1 then 1 else 0 end,
         last_granted = ${refilled} >= 1,
         updated_at = clock_timestamp()
       returning last_granted as granted`,
      [tenantId, cap],
    );
    if (r.rows[0]?.granted !== true)
      throw new TenantScopeError('RATE_LIMITED', 'call rate limit reached for this tenant');
    this.#inFlight.set(tenantId, inFlight + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#inFlight.get(tenantId) ?? 1) - 1;
      if (n <= 0) this.#inFlight.delete(tenantId);
      else this.#inFlight.set(tenantId, n);
    };
  }
}
