import pg from 'pg';
import { boundQuery } from './bound-query.ts';
import { wrapDriverError } from './errors.ts';
import { FENCE_CHANNEL } from './fence.ts';

/** Tenant-affine connections for hot tenants: the fast path. */
export interface HotOptions {
  /** Most tenants holding a hot connection at once (one connection each). Required, 1–1000. */
  maxTenants: number;
  /** Queries a tenant must make within `windowMs` to be promoted. Default 20. */
  promoteAfter?: number;
  /** Counting window for promotion, in ms. Default 1000. */
  windowMs?: number;
  /** A hot connection unused for this long is closed, freeing its slot. Default 30000. */
  idleMs?: number;
}

interface Lane {
  tenantId: string;
  client: pg.Client;
  ready: boolean;
  retired: boolean;
  lastUsed: number;
  inflight: number;
}

/**
 * Statements that can change session state are never sent on a hot connection: the binding is
 * session-level there, so e.g. `RESET ALL` would leave that tenant's next statements with no rows
 * (fail closed, but wrong). Such text takes the per-transaction path instead.
 */
const SESSION_TOUCHING =
  /\b(set|reset|discard|set_config|role|session|begin|commit|rollback|end|abort|savepoint|prepare|deallocate|declare|listen|load|do|call|copy)\b|\bpg_(try_)?advisory_lock(_shared)?\b|;/i;

/**
 * Each hot tenant gets one pipelined connection, bound once with `tenantscope.bind_session`
 * (HMAC over tenant and backend pid). It is used for that tenant only and closed, never pooled,
 * when retired, so no other checkout can ever see its binding. Concurrent statements of the same
 * tenant share it through pipelining, each in its own implicit transaction: one statement, one
 * round trip, no BEGIN/bind/COMMIT.
 */
export class HotLanes {
  readonly #config: pg.ClientConfig;
  readonly #max: number;
  readonly #promoteAfter: number;
  readonly #windowMs: number;
  readonly #idleMs: number;
  readonly #token: (tenantId: string) => string;
  /**
   * Behind a transaction pooler a session binding would stay on a server connection that other
   * clients get next, so lanes never call `bind_session` there: every statement on a lane binds
   * itself per transaction (as the multiplexer does) and the lane only keeps tenant affinity.
   */
  readonly #perTransaction: boolean;
  readonly #named: boolean;
  readonly #lanes = new Map<string, Lane>();
  /** Query counts of recent tenants; bounded. */
  readonly #counts = new Map<string, { n: number; since: number }>();
  readonly #maxCounts: number;
  #hotQueries = 0;
  #ended = false;
  #sweeper: NodeJS.Timeout;

  constructor(
    config: pg.PoolConfig,
    options: HotOptions,
    token: (tenantId: string) => string,
    binding: { perTransaction: boolean; named: boolean } = { perTransaction: false, named: true },
  ) {
    if (!Number.isInteger(options.maxTenants) || options.maxTenants < 1 || options.maxTenants > 1000) {
      throw wrapDriverError(new Error('hot.maxTenants must be an integer from 1 to 1000'), 'hot options');
    }
    const { max: _max, idleTimeoutMillis: _i, connectionTimeoutMillis: _c, ...clientConfig } = config as pg.PoolConfig;
    this.#config = { ...clientConfig, pipeline: true } as pg.ClientConfig;
    this.#max = options.maxTenants;
    this.#promoteAfter = options.promoteAfter ?? 20;
    this.#windowMs = options.windowMs ?? 1000;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#maxCounts = Math.max(1000, this.#max * 20);
    this.#token = token;
    this.#perTransaction = binding.perTransaction;
    this.#named = binding.named;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(this.#idleMs, 5000));
    this.#sweeper.unref();
  }

  stats(): { hotTenants: number; hotConnections: number; hotQueries: number } {
    let ready = 0;
    for (const l of this.#lanes.values()) if (l.ready && !l.retired) ready++;
    return { hotTenants: ready, hotConnections: this.#lanes.size, hotQueries: this.#hotQueries };
  }

  /** Runs the statement on the tenant's hot connection, or returns undefined (use the shared path). */
  tryQuery<R extends pg.QueryResultRow>(
    tenantId: string,
    text: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>> | undefined {
    if (this.#ended) return undefined;
    const lane = this.#lanes.get(tenantId);
    if (lane?.ready && !lane.retired) {
      if (SESSION_TOUCHING.test(text)) return undefined;
      return this.#run<R>(lane, text, params);
    }
    if (!lane) this.#count(tenantId);
    return undefined;
  }

  async #run<R extends pg.QueryResultRow>(lane: Lane, text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    lane.inflight++;
    lane.lastUsed = Date.now();
    this.#hotQueries++;
    try {
      const r = this.#perTransaction
        ? await boundQuery<R>(lane.client, this.#token(lane.tenantId), text, params, this.#named)
        : await lane.client.query<R>({ text, values: params });
      // A hot connection must be idle between statements; anything else retires it.
      if (lane.client.getTransactionStatus?.() !== 'I') this.#retire(lane);
      return r;
    } catch (err) {
      this.#retire(lane);
      throw wrapDriverError(err, 'query');
    } finally {
      lane.inflight--;
      if (lane.retired && lane.inflight === 0) void lane.client.end().catch(() => undefined);
    }
  }

  #count(tenantId: string): void {
    const now = Date.now();
    let c = this.#counts.get(tenantId);
    if (!c || now - c.since > this.#windowMs) {
      c = { n: 0, since: now };
      this.#counts.delete(tenantId);
      this.#counts.set(tenantId, c);
      if (this.#counts.size > this.#maxCounts) {
        const oldest = this.#counts.keys().next().value;
        if (oldest !== undefined) this.#counts.delete(oldest);
      }
    }
    c.n++;
    if (c.n >= this.#promoteAfter) {
      this.#counts.delete(tenantId);
      this.#promote(tenantId);
    }
  }

  #promote(tenantId: string): void {
    if (this.#lanes.size >= this.#max) {
      // Free the slot of the least recently used hot tenant that has been quiet for a window.
      let victim: Lane | undefined;
      for (const l of this.#lanes.values()) {
        if (
          l.ready &&
          l.inflight === 0 &&
          Date.now() - l.lastUsed > this.#windowMs &&
          (!victim || l.lastUsed < victim.lastUsed)
        )
          victim = l;
      }
      if (!victim) return;
      this.#retire(victim);
    }
    const client = new pg.Client(this.#config);
    const lane: Lane = { tenantId, client, ready: false, retired: false, lastUsed: Date.now(), inflight: 0 };
    this.#lanes.set(tenantId, lane);
    client.on('error', () => this.#retire(lane));
    // A move fences the tenant at this database: the lane (whose session binding holds the
    // tenant's shared fence key) closes, and the fence's wait for that key ends.
    client.on('notification', (m) => {
      if (m.channel === FENCE_CHANNEL && m.payload === tenantId) this.#retire(lane);
    });
    void (async () => {
      try {
        await client.connect();
        if (!this.#perTransaction) {
          // Listening before binding (pipelined: one round trip): a fence that commits after the
          // bind is heard; one that committed before makes bind_session refuse.
          const listen = client.query(`LISTEN ${FENCE_CHANNEL}`);
          const bind = client.query<{ t: string }>('SELECT tenantscope.bind_session($1) AS t', [this.#token(tenantId)]);
          const [, r] = await Promise.all([listen, bind]);
          if (r.rows[0]?.t !== tenantId) throw new Error('bind_session returned another tenant');
        }
        if (this.#ended || lane.retired) throw new Error('retired');
        lane.ready = true;
      } catch {
        this.#retire(lane);
      }
    })();
  }

  #retire(lane: Lane): void {
    if (!lane.retired) {
      lane.retired = true;
      if (this.#lanes.get(lane.tenantId) === lane) this.#lanes.delete(lane.tenantId);
    }
    if (lane.inflight === 0) void lane.client.end().catch(() => undefined);
  }

  #sweep(): void {
    const now = Date.now();
    for (const l of [...this.#lanes.values()]) {
      if (l.ready && l.inflight === 0 && now - l.lastUsed > this.#idleMs) this.#retire(l);
    }
  }

  async end(): Promise<void> {
    this.#ended = true;
    clearInterval(this.#sweeper);
    const lanes = [...this.#lanes.values()];
    for (const l of lanes) this.#retire(l);
    await Promise.allSettled(lanes.map((l) => l.client.end()));
  }
}
