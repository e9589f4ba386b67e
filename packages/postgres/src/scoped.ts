import {
  assertTenant,
  type CallInfo,
  type ResourceProvider,
  type ScopedAdapter,
  type Tenant,
  TenantScopeError,
} from '@tenantscope/core';
import pg from 'pg';
import { assertBindableTenantId, DEFAULT_TENANT_SETTING, normaliseBindingKey, TokenCache } from './binding.ts';
import { boundQuery } from './bound-query.ts';
import { type DoctorOptions, type DoctorReport, runDoctor } from './doctor.ts';
import { checkPoolerMode } from './doctor-pooler.ts';
import { type ExportedRow, PgTenantData, type TenantData, type TenantDataOptions, tenantData } from './dsar.ts';
import { pgError, wrapDriverError } from './errors.ts';
import { HotLanes, type HotOptions } from './hot.ts';
import { Multiplexer } from './multiplex.ts';
import { type PgPlacement, type PgPlacementResolver, resolvePlacement, SHARED, sharedPlacement } from './placement.ts';
import {
  detectTransactionPooler,
  namedStatementsSurvive,
  normalisePooler,
  type PoolerMode,
  type PoolerOptions,
  sessionCleanup,
} from './pooler.ts';
import { assertSettingName } from './sql.ts';
import { checkTenantDatabase, type Lease, TierPools } from './tier-pools.ts';
import {
  assertUntrustedStatement,
  type ByteCap,
  capSocketBytes,
  checkMaxBytes,
  DEFAULT_UNTRUSTED_MAX_BYTES,
  resultTooLarge,
} from './untrusted.ts';

export type { QueryResult, QueryResultRow } from 'pg';

type QueryResult<R extends pg.QueryResultRow> = pg.QueryResult<R>;

export interface ScopedPoolOptions {
  /** The 64-byte key from `installTenantScope` (bytes, hex or base64). Required. */
  bindingKey: Uint8Array | string;
  /** Setting that carries the binding. Default `app.tenant_id`; must match the install. */
  setting?: string;
  /**
   * Where a tenant's data lives, resolved once per operation (query, transaction, export), so a
   * moved tenant's next call reaches its new database. May return a Promise (a registry lookup).
   * Default: everyone in the shared, RLS-separated tables of this pool's database.
   */
  placement?: PgPlacementResolver;
  /**
   * Dedicated tier: most tenant-database pools open at once (a bounded LRU; the least recently
   * used idle one is ended to open another). Default 16.
   */
  maxTenantPools?: number;
  /** Dedicated tier: connections per tenant-database pool (`max` of each). Default 4. */
  tenantPoolMax?: number;
  /** Dedicated tier: how long an operation waits for a free tenant-database pool slot, in ms. Default 10000. */
  tenantPoolAcquireTimeoutMs?: number;
  /**
   * Tenant-affine connections for hot tenants (the fast path). Off unless given. Each hot tenant
   * gets its own pipelined connection, bound once to it at start; nothing else ever uses it.
   */
  hot?: HotOptions;
  /** Statement timeout for `queryUntrusted`, in ms. Default 5000. */
  untrustedTimeoutMs?: number;
  /**
   * Byte limit of one `queryUntrusted` result, counted as the server sends it (rows and protocol
   * framing); past it reading stops and the call fails with PG_RESULT_TOO_LARGE. Default 1 MiB.
   */
  untrustedMaxBytes?: number;
  /**
   * Shared pipelined connections that carry single statements of many tenants at once, each
   * statement with its own binding in its own implicit transaction (no exclusive checkout).
   * 0 turns it off: every statement then checks a connection out of the pool. Default 0.
   * Needs a connection config (not only a Pool) to open them; the pool's options are used.
   */
  multiplex?: number;
  /**
   * What sits between this pool and PostgreSQL: `'none'` (default, a direct connection),
   * `'session'` (a session-mode pooler) or `'transaction'` (PgBouncer `pool_mode = transaction`,
   * Supavisor port 6543, pgcat). Behind `'transaction'` nothing tenant-bound outlives a
   * transaction: hot lanes bind per statement, the bind call is parsed unnamed, and text that may
   * leave session state runs as one statement with the session state reset before COMMIT.
   * With `'none'`/`'session'` the first use checks for a transaction pooler and, if it finds one,
   * every call fails with PG_POOLER_MISMATCH (see `detectPooler`).
   */
  pooler?: PoolerMode;
  /**
   * With `pooler: 'transaction'`: the pooler keeps named prepared statements across transactions
   * (PgBouncer 1.21+ `max_prepared_statements`, pgcat `prepared_statements`). Default false.
   */
  poolerPreparedStatements?: boolean;
  /**
   * With `pooler: 'none'`/`'session'`: look for a transaction pooler once, before the first
   * statement (two extra connections, once), and fail closed if one is found. Default true.
   */
  detectPooler?: boolean;
  /**
   * What `tenantData(tenant)` (export and erasure of one tenant) works on: the tenant tables and
   * the audit sink every operation is recorded in (`actor`, `batchSize` optional). Without it
   * `tenantData` throws INVALID_CONFIG.
   */
  dsar?: TenantDataOptions;
}

/** Options of one scoped transaction. */
export interface TransactionOptions {
  /** `BEGIN READ ONLY`. Default false. */
  readOnly?: boolean;
  /** Isolation level. Default the server's (read committed). */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
}

/** Options of `queryUntrusted`. */
export interface UntrustedQueryOptions {
  /** Run read-only. Default true. */
  readOnly?: boolean;
  /** Statement timeout in ms. Default the pool's `untrustedTimeoutMs` (5000). */
  timeoutMs?: number;
  /** Byte limit of this result. Default the pool's `untrustedMaxBytes` (1 MiB). */
  maxBytes?: number;
}

/** Queries inside a scoped transaction. */
export interface ScopedTransaction {
  readonly tenantId: string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<QueryResult<R>>;
}

/** A database handle bound to one verified tenant. This is what a tool sees as `ctx.db`. */
export interface TenantDb {
  readonly tenantId: string;
  /**
   * One statement in its own transaction bound to the tenant (one network round trip on a
   * pipelined pool), or on the tenant's hot connection when it has one.
   */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<QueryResult<R>>;
  /** Runs `fn` in one transaction bound to the tenant. Commits if it resolves, rolls back if it throws. */
  transaction<T>(fn: (tx: ScopedTransaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * SQL written by someone you do not trust (an agent): one statement (extended protocol, so
   * no multi-statement strings), read-only by default, under a statement timeout, on a connection
   * that is destroyed afterwards so nothing it did to the session (settings, cursors, temp
   * tables) can reach a later checkout. Only SELECT, WITH, VALUES, TABLE and DML run (EXPLAIN,
   * DO, SET, SHOW, … fail with PG_STATEMENT_REFUSED); a result past `maxBytes` stops being read
   * and fails with PG_RESULT_TOO_LARGE.
   */
  queryUntrusted<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    params?: unknown[],
    options?: UntrustedQueryOptions,
  ): Promise<QueryResult<R>>;
}

interface PoolLike {
  connect(): Promise<pg.PoolClient>;
  end(): Promise<void>;
  options?: pg.PoolConfig;
}

/**
 * Wraps a `pg.Pool` (or a config: then the pool is created with `pipeline: true`) so every
 * statement runs bound to one verified tenant. `forTenant(tenant)` returns the handle; `provider()`
 * plugs it into core as `ctx.db`.
 */
export function scopedPool(poolOrConfig: pg.Pool | pg.PoolConfig, options: ScopedPoolOptions): ScopedPool {
  return new ScopedPool(poolOrConfig, options);
}

export class ScopedPool implements ScopedAdapter<TenantDb, ExportedRow> {
  readonly #pool: PoolLike;
  #dsar: TenantData | undefined;
  readonly #ownsPool: boolean;
  readonly #tokens: TokenCache;
  readonly #setting: string;
  readonly #placement: PgPlacementResolver;
  readonly #options: ScopedPoolOptions;
  #tiers: TierPools<ScopedPool> | undefined;
  readonly #hot: HotLanes | undefined;
  readonly #mux: Multiplexer | undefined;
  readonly #untrustedTimeoutMs: number;
  readonly #untrustedMaxBytes: number;
  readonly #config: pg.PoolConfig;
  readonly #pooler: PoolerOptions;
  readonly #named: boolean;
  /** Undefined until the pooler check passed (or was not wanted); then the checks are a field read. */
  #poolerChecked: Promise<void> | undefined;
  #poolerOk: boolean;
  #ended = false;

  constructor(poolOrConfig: pg.Pool | pg.PoolConfig, options: ScopedPoolOptions) {
    if (!options || options.bindingKey === undefined) {
      throw new TenantScopeError('INVALID_CONFIG', 'scopedPool needs options.bindingKey (from installTenantScope)');
    }
    const key = normaliseBindingKey(options.bindingKey);
    this.#setting = options.setting ?? DEFAULT_TENANT_SETTING;
    assertSettingName(this.#setting);
    this.#tokens = new TokenCache(key, this.#setting);
    this.#placement = options.placement ?? sharedPlacement;
    if (typeof this.#placement !== 'function')
      throw new TenantScopeError('INVALID_CONFIG', 'placement must be a function');
    this.#options = options;
    this.#untrustedTimeoutMs = options.untrustedTimeoutMs ?? 5000;
    this.#untrustedMaxBytes = checkMaxBytes(
      options.untrustedMaxBytes ?? DEFAULT_UNTRUSTED_MAX_BYTES,
      'untrustedMaxBytes',
    );
    if (poolOrConfig instanceof pg.Pool || typeof (poolOrConfig as PoolLike).connect === 'function') {
      this.#pool = poolOrConfig as unknown as PoolLike;
      this.#ownsPool = false;
      this.#config = { ...((poolOrConfig as PoolLike).options ?? {}) };
    } else {
      this.#config = { ...(poolOrConfig as pg.PoolConfig) };
      this.#pool = new pg.Pool({ ...this.#config, pipeline: true } as pg.PoolConfig);
      this.#ownsPool = true;
    }
    this.#pooler = normalisePooler(options.pooler, options.poolerPreparedStatements);
    this.#named = namedStatementsSurvive(this.#pooler);
    if (options.detectPooler !== undefined && typeof options.detectPooler !== 'boolean')
      throw new TenantScopeError('INVALID_CONFIG', 'detectPooler must be a boolean');
    this.#poolerOk = this.#pooler.mode === 'transaction' || options.detectPooler === false;
    const mux = options.multiplex ?? 0;
    if (!Number.isInteger(mux) || mux < 0 || mux > 1000)
      throw new TenantScopeError('INVALID_CONFIG', 'multiplex must be an integer from 0 to 1000');
    this.#mux = mux > 0 ? new Multiplexer(this.#config, mux, this.#named) : undefined;
    this.#hot = options.hot
      ? new HotLanes(this.#config, options.hot, (id) => this.#tokens.get(id), {
          perTransaction: this.#pooler.mode === 'transaction',
          named: this.#named,
        })
      : undefined;
    // Checks the dedicated-tier options now; the pools open on first use.
    if (options.placement) this.#tiers = this.#tierPools(options);
  }

  /** The wrapped pool, unscoped: statements on it see no tenant (policies return no rows). */
  get unscopedPool(): pg.Pool {
    return this.#pool as unknown as pg.Pool;
  }

  /** The declared pooler mode. */
  get pooler(): PoolerMode {
    return this.#pooler.mode;
  }

  /** The setting name this pool binds. */
  get setting(): string {
    return this.#setting;
  }

  /** Counters for tests, benchmarks and metrics. */
  stats(): {
    hotTenants: number;
    hotConnections: number;
    hotQueries: number /** Statements that checked a connection out of the pool. */;
    sharedQueries: number;
    multiplexedQueries: number;
    /** Dedicated tier: tenant-database pools open now (draining ones included) and the most at once. */
    tenantPools: number;
    tenantPoolsPeak: number;
    /** Dedicated tier: tenant-database pools opened so far (a refused database is retried after 1 s, not on every call). */
    tenantPoolsOpened: number;
  } {
    const hot = this.#hot?.stats() ?? { hotTenants: 0, hotConnections: 0, hotQueries: 0 };
    const tiers = this.#tiers?.stats();
    return {
      ...hot,
      sharedQueries: this.#shared,
      multiplexedQueries: this.#mux?.units ?? 0,
      tenantPools: tiers?.pools ?? 0,
      tenantPoolsPeak: tiers?.peak ?? 0,
      tenantPoolsOpened: tiers?.created ?? 0,
    };
  }
  #shared = 0;

  /** A handle bound to `tenant`, which must be a verified Tenant from core; anything else throws NOT_A_TENANT. */
  forTenant(tenant: Tenant): TenantDb {
    assertTenant(tenant, 'scopedPool.forTenant');
    assertBindableTenantId(tenant.id);
    const id = tenant.id;
    if (this.#placement === sharedPlacement) return this.#sharedDb(id);
    // Placement is resolved per operation; a sync answer of shared takes the same path as above.
    return Object.freeze({
      tenantId: id,
      query: <R extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
        this.#refenced(tenant, NOT_STARTED, () => {
          const p = this.#place(tenant);
          return p === SHARED
            ? this.#query<R>(id, text, params)
            : this.#placed(p, tenant, (db) => db.query<R>(text, params));
        }),
      transaction: <T>(fn: (tx: ScopedTransaction) => Promise<T>, opts?: TransactionOptions) => {
        let started = false;
        const run = (tx: ScopedTransaction) => {
          started = true;
          return fn(tx);
        };
        return this.#refenced(
          tenant,
          () => started,
          () => {
            const p = this.#place(tenant);
            return p === SHARED
              ? this.#transaction(id, run, opts)
              : this.#placed(p, tenant, (db) => db.transaction(run, opts));
          },
        );
      },
      queryUntrusted: <R extends pg.QueryResultRow>(text: string, params?: unknown[], opts?: UntrustedQueryOptions) =>
        this.#refenced(tenant, NOT_STARTED, () => {
          const p = this.#place(tenant);
          return p === SHARED
            ? this.#untrusted<R>(id, text, params, opts)
            : this.#placed(p, tenant, (db) => db.queryUntrusted<R>(text, params, opts));
        }),
    });
  }

  /**
   * Runs `op`; if the database refused the tenant's binding because a move fenced it there (the
   * bind is the first statement, so none of the caller's work ran: `started` says so for a
   * transaction's callback), drops the resolver's cached placement and runs `op` once more on a
   * fresh one. A second refusal (the move is still paused) reaches the caller as PLACEMENT_PAUSED.
   */
  async #refenced<T>(tenant: Tenant, started: () => boolean, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      const invalidate = (this.#placement as { invalidate?: unknown }).invalidate;
      if (!isFenced(err) || started() || typeof invalidate !== 'function') throw err;
      (invalidate as (id: string) => void)(tenant.id);
      return op();
    }
  }

  /** The tenant's placement for one operation: `SHARED` (sync), a placement, or a (possibly rejected) Promise of one. */
  #place(tenant: Tenant): PgPlacement | Promise<PgPlacement> {
    try {
      return resolvePlacement(this.#placement, tenant);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The handle on this pool's own (shared) database. */
  #sharedDb(id: string): TenantDb {
    return Object.freeze({
      tenantId: id,
      query: <R extends pg.QueryResultRow>(text: string, params?: unknown[]) => this.#query<R>(id, text, params),
      transaction: <T>(fn: (tx: ScopedTransaction) => Promise<T>, opts?: TransactionOptions) =>
        this.#transaction(id, fn, opts),
      queryUntrusted: <R extends pg.QueryResultRow>(text: string, params?: unknown[], opts?: UntrustedQueryOptions) =>
        this.#untrusted<R>(id, text, params, opts),
    });
  }

  /**
   * One operation on a placement that was not a sync `shared`: an async resolver's answer, or a
   * dedicated database (a pool from the bounded LRU, held until the operation ends).
   */
  async #placed<T>(
    placement: PgPlacement | Promise<PgPlacement>,
    tenant: Tenant,
    op: (db: TenantDb) => Promise<T>,
  ): Promise<T> {
    const p = await placement;
    if (p === SHARED || p.tier === 'shared') return op(this.#sharedDb(tenant.id));
    const lease = await this.#tierLease(p.connectionString);
    try {
      return await op(lease.pool.forTenant(tenant));
    } finally {
      lease.release();
    }
  }

  async #tierLease(connectionString: string): Promise<Lease<ScopedPool>> {
    if (this.#ended) throw pgError('PG_UNAVAILABLE', 'scoped pool has ended');
    // A tenant database behind this pool's own host:port: one pooler probe serves both.
    if (!this.#poolerOk && frontOf(connectionString) === frontOf(this.#config)) await this.#checkPooler();
    this.#tiers ??= this.#tierPools(this.#options);
    return this.#tiers.acquire(connectionString);
  }

  /**
   * The dedicated tier: one ScopedPool per tenant database, with this pool's binding key, setting,
   * pooler and limits (no hot lanes, no multiplexing), its connection target taken from the
   * placement's URL only. Each is checked before first use (`checkTenantDatabase`).
   */
  #tierPools(options: ScopedPoolOptions): TierPools<ScopedPool> {
    const max = options.tenantPoolMax ?? 4;
    if (!Number.isInteger(max) || max < 1 || max > 1000)
      throw new TenantScopeError('INVALID_CONFIG', 'tenantPoolMax must be an integer from 1 to 1000');
    const acquireTimeoutMs = options.tenantPoolAcquireTimeoutMs ?? 10_000;
    if (!Number.isInteger(acquireTimeoutMs) || acquireTimeoutMs < 1)
      throw new TenantScopeError('INVALID_CONFIG', 'tenantPoolAcquireTimeoutMs must be a positive integer');
    const {
      connectionString: _cs,
      host: _h,
      port: _p,
      database: _d,
      user: _u,
      password: _pw,
      max: _m,
      ...base
    } = this.#config;
    const inner: ScopedPoolOptions = {
      bindingKey: options.bindingKey,
      setting: this.#setting,
      pooler: this.#pooler.mode,
      poolerPreparedStatements: options.poolerPreparedStatements,
      detectPooler: options.detectPooler,
      untrustedTimeoutMs: this.#untrustedTimeoutMs,
      untrustedMaxBytes: this.#untrustedMaxBytes,
    };
    return new TierPools<ScopedPool>({
      maxPools: options.maxTenantPools ?? 16,
      acquireTimeoutMs,
      // The pooler probe looks at what answers on host:port: proven once for this pool's own front, not again.
      create: (connectionString) =>
        new ScopedPool(
          { ...base, connectionString, max },
          this.#poolerOk && frontOf(connectionString) === frontOf(this.#config)
            ? { ...inner, detectPooler: false }
            : inner,
        ),
      check: (pool) => checkTenantDatabase(pool.unscopedPool),
    });
  }

  /** A core ResourceProvider: `providers: { db: scoped.provider() }` gives tools `ctx.db`. */
  provider(): ResourceProvider<TenantDb> {
    return { forCall: (call: CallInfo) => this.forTenant(call.tenant) };
  }

  /**
   * Export and erasure of one verified tenant's rows in the `dsar.tables` (each operation its own
   * transaction, audited to `dsar.audit`): `count()` (`parts`: rows per table), `export()` (rows
   * streamed through a cursor), `delete()` (one transaction, then a recount that must be 0).
   */
  tenantData(tenant: Tenant): PgTenantData {
    assertTenant(tenant, 'scopedPool.tenantData');
    if (!this.#options.dsar) {
      throw new TenantScopeError('INVALID_CONFIG', 'scopedPool needs options.dsar ({ tables, audit }) for tenantData');
    }
    this.#dsar ??= tenantData(this, this.#options.dsar);
    return new PgTenantData(this.#dsar, tenant);
  }

  /**
   * A non-pipelined connection bound to `tenantId` in an open transaction, for cursors
   * (pipelined clients refuse them). The caller must `finish(ok)`. @internal
   */
  async cursorCheckout(
    tenant: Tenant | string,
    readOnly: boolean,
  ): Promise<{ client: pg.Client; finish(ok: boolean): Promise<void> }> {
    if (typeof tenant !== 'string') {
      assertTenant(tenant, 'scopedPool.cursorCheckout');
      const p = await resolvePlacement(this.#placement, tenant);
      if (p.tier === 'dedicated') {
        const lease = await this.#tierLease(p.connectionString);
        try {
          const c = await lease.pool.cursorCheckout(tenant.id, readOnly);
          return { client: c.client, finish: (ok) => c.finish(ok).finally(lease.release) };
        } catch (err) {
          lease.release();
          throw err;
        }
      }
    } else if (this.#placement !== sharedPlacement) {
      // A bare id cannot be placed: only a verified Tenant goes through the resolver.
      throw pgError('PG_PLACEMENT_UNSUPPORTED', 'cursorCheckout needs the Tenant when a placement resolver is set');
    }
    const tenantId = typeof tenant === 'string' ? tenant : tenant.id;
    assertBindableTenantId(tenantId);
    if (!this.#poolerOk) await this.#checkPooler();
    const client = new pg.Client({ ...this.#config, pipeline: false } as pg.ClientConfig);
    try {
      await client.connect();
      await client.query(readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
      await client.query('SELECT tenantscope.bind($1)', [this.#tokens.get(tenantId)]);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw wrapDriverError(err, 'bind');
    }
    return {
      client,
      finish: async (ok) => {
        try {
          if (ok) await client.query('COMMIT');
        } finally {
          await client.end().catch(() => undefined);
        }
      },
    };
  }

  /** The token `tenantscope.bind($1)` takes for `tenantId`. For adapters that run their own transactions (audit). */
  bindToken(tenant: Tenant): string {
    assertTenant(tenant, 'scopedPool.bindToken');
    return this.#tokens.get(tenant.id);
  }

  /**
   * Start-up safety checks on the role this pool connects as: refuses (PG_DOCTOR_FAILED, every
   * problem in `details.problems`) a superuser, BYPASSRLS, an owner of a tenant table, a tenant
   * table without ENABLE/FORCE/policy, a view over one without `security_invoker`, a key the role
   * can read or a key that does not bind.
   */
  async doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
    if (this.#ended) throw pgError('PG_UNAVAILABLE', 'scoped pool has ended');
    const pre = await checkPoolerMode(this.#config, this.#pooler.mode);
    // No pooler gate here: a mismatch is one of the doctor's findings, not a reason to skip the rest.
    const client = await this.#checkout(true);
    let failed = false;
    try {
      return await runDoctor(client, options, this.#tokens.get('doctor-probe'), pre);
    } catch (err) {
      failed = (err as { code?: string }).code !== 'PG_DOCTOR_FAILED';
      throw err;
    } finally {
      client.release(failed ? new Error('tenantscope: connection discarded') : undefined);
    }
  }

  /** Closes hot connections, and the pool if this object created it. */
  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#tiers?.end();
    await this.#hot?.end();
    await this.#mux?.end();
    if (this.#ownsPool) await this.#pool.end();
  }

  /**
   * With pooler 'none'/'session': once, before the first statement, look for a transaction pooler
   * and fail closed (PG_POOLER_MISMATCH, on every call) if there is one. A probe that could not
   * connect is retried on the next call.
   */
  #checkPooler(): Promise<void> {
    this.#poolerChecked ??= detectTransactionPooler(this.#config).then(
      (probe) => {
        if (probe.transactionPooler) {
          throw pgError(
            'PG_POOLER_MISMATCH',
            `declared pooler '${this.#pooler.mode}' but a transaction pooler is in front of PostgreSQL (${probe.evidence}); set pooler: 'transaction'`,
          );
        }
        this.#poolerOk = true;
      },
      (err) => {
        this.#poolerChecked = undefined;
        throw err;
      },
    );
    return this.#poolerChecked;
  }

  async #checkout(forDoctor = false): Promise<pg.PoolClient> {
    if (this.#ended) throw pgError('PG_UNAVAILABLE', 'scoped pool has ended');
    if (!this.#poolerOk && !forDoctor) await this.#checkPooler();
    try {
      return await this.#pool.connect();
    } catch (err) {
      throw wrapDriverError(err, 'connect');
    }
  }

  async #query<R extends pg.QueryResultRow>(
    tenantId: string,
    text: string,
    params?: unknown[],
  ): Promise<QueryResult<R>> {
    checkText(text, params);
    if (!this.#poolerOk) await this.#checkPooler();
    if (this.#hot) {
      const r = this.#hot.tryQuery<R>(tenantId, text, params);
      if (r) return r;
    }
    if (LEAVES_SESSION_STATE.test(text)) {
      this.#shared++;
      // Multi-statement or session-touching text: an explicit transaction (simple protocol allowed),
      // and the connection is destroyed afterwards.
      return this.#inTransaction<R>(tenantId, text, params, ['BEGIN'], undefined, true);
    }
    if (this.#mux) return this.#mux.run<R>(this.#tokens.get(tenantId), text, params);
    this.#shared++;
    return this.#bound<R>(tenantId, text, params);
  }

  /** The common case: binding and statement in one implicit transaction, one round trip. */
  async #bound<R extends pg.QueryResultRow>(
    tenantId: string,
    text: string,
    params?: unknown[],
  ): Promise<QueryResult<R>> {
    const token = this.#tokens.get(tenantId);
    const client = await this.#checkout();
    let failed = true;
    try {
      const r = await boundQuery<R>(client, token, text, params, this.#named);
      failed = client.getTransactionStatus?.() !== 'I';
      return r;
    } catch (err) {
      const e = wrapDriverError(err, 'query');
      // A fenced tenant's refused bind leaves the connection clean: keep it (no reconnect for the others).
      if (isFenced(e) && client.getTransactionStatus?.() === 'I') failed = false;
      throw e;
    } finally {
      client.release(failed ? new Error('tenantscope: connection discarded') : undefined);
    }
  }

  async #untrusted<R extends pg.QueryResultRow>(
    tenantId: string,
    text: string,
    params: unknown[] | undefined,
    opts: UntrustedQueryOptions = {},
  ): Promise<QueryResult<R>> {
    checkText(text, params);
    const timeout = opts.timeoutMs ?? this.#untrustedTimeoutMs;
    if (!Number.isInteger(timeout) || timeout < 1)
      throw new TenantScopeError('INVALID_ARGUMENT', 'timeoutMs must be a positive integer');
    const maxBytes = checkMaxBytes(opts.maxBytes ?? this.#untrustedMaxBytes);
    assertUntrustedStatement(text);
    const begin = opts.readOnly === false ? 'BEGIN' : 'BEGIN READ ONLY';
    let cap: ByteCap | undefined;
    let result: QueryResult<R>;
    try {
      result = await this.#inTransaction<R>(
        tenantId,
        text,
        params,
        [begin, `SET LOCAL statement_timeout = ${timeout}`],
        'extended',
        true,
        (client) => {
          cap = capSocketBytes(client, maxBytes);
        },
      );
    } catch (err) {
      if (cap?.exceeded) throw resultTooLarge(maxBytes, err);
      throw err;
    } finally {
      cap?.detach();
    }
    // The last read may have carried the whole reply past the limit: still refused.
    if ((cap as ByteCap | undefined)?.exceeded) throw resultTooLarge(maxBytes);
    return result;
  }

  /**
   * BEGIN, bind, statement, COMMIT written back to back: with `pipeline: true` that is one
   * round trip. Any error, or a connection not idle afterwards, destroys the connection.
   * Behind a transaction pooler, destroying the client connection does not end the server's
   * session, so the statement must be a single one (extended protocol) and the session state it
   * may have left is reset before COMMIT, inside the same transaction (`sessionCleanup`).
   */
  async #inTransaction<R extends pg.QueryResultRow>(
    tenantId: string,
    text: string,
    params: unknown[] | undefined,
    prelude: string[],
    queryMode: 'extended' | undefined,
    destroyAfter: boolean,
    onClient?: (client: pg.PoolClient) => void,
  ): Promise<QueryResult<R>> {
    const token = this.#tokens.get(tenantId);
    const pooled = this.#pooler.mode === 'transaction';
    const epilogue = [...(pooled ? sessionCleanup(this.#pooler) : []), 'COMMIT'];
    const client = await this.#checkout();
    let failure: unknown;
    try {
      onClient?.(client);
      const stmt: pg.QueryConfig = { text, values: params };
      const mode = pooled ? 'extended' : queryMode;
      if (mode) (stmt as { queryMode?: string }).queryMode = mode;
      if ((client as unknown as { pipeline?: boolean }).pipeline) {
        const ps: Promise<unknown>[] = [
          ...prelude.map((p) => client.query(p)),
          client.query('SELECT tenantscope.bind($1)', [token]),
        ];
        const q = client.query<R>(stmt);
        const after = epilogue.map((e) => client.query(e));
        const settled = await Promise.allSettled([...ps, q, ...after]);
        const bad = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
        if (bad) {
          const bindFailed = settled[prelude.length]?.status === 'rejected';
          failure = bindFailed ? (settled[prelude.length] as PromiseRejectedResult).reason : bad.reason;
          throw wrapDriverError(failure, 'query');
        }
        const result = (settled[prelude.length + 1] as PromiseFulfilledResult<QueryResult<R>>).value;
        return result;
      }
      for (const p of prelude) await client.query(p);
      try {
        await client.query('SELECT tenantscope.bind($1)', [token]);
      } catch (err) {
        failure = err;
        throw wrapDriverError(err, 'bind');
      }
      const result = await client.query<R>(stmt);
      for (const e of epilogue) await client.query(e);
      return result;
    } catch (err) {
      failure ??= err;
      throw wrapDriverError(err, 'query');
    } finally {
      const idle = (client as unknown as { getTransactionStatus?: () => string | null }).getTransactionStatus?.();
      const unclean = failure !== undefined || destroyAfter || (idle !== undefined && idle !== 'I');
      // release(err) makes pg-pool destroy the connection instead of pooling it.
      client.release(unclean ? new Error('tenantscope: connection discarded') : undefined);
    }
  }

  async #transaction<T>(
    tenantId: string,
    fn: (tx: ScopedTransaction) => Promise<T>,
    opts: TransactionOptions = {},
  ): Promise<T> {
    if (typeof fn !== 'function') throw new TenantScopeError('INVALID_ARGUMENT', 'transaction needs a function');
    const token = this.#tokens.get(tenantId);
    const client = await this.#checkout();
    let failed = false;
    let open = true;
    /** A statement that may leave session state ran: behind a transaction pooler, reset it before COMMIT. */
    let touched = false;
    /** The bind was refused because a move fenced the tenant here: nothing else ran on the connection. */
    let refused = false;
    try {
      let begin = 'BEGIN';
      if (opts.isolation) {
        if (!['read committed', 'repeatable read', 'serializable'].includes(opts.isolation)) {
          throw new TenantScopeError('INVALID_ARGUMENT', 'unknown isolation level');
        }
        begin += ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}`;
      }
      if (opts.readOnly) begin += ' READ ONLY';
      const b = client.query(begin);
      const bind = client.query('SELECT tenantscope.bind($1)', [token]);
      const [rb, rbind] = await Promise.allSettled([b, bind]);
      if (rb.status === 'rejected') throw wrapDriverError(rb.reason, 'begin');
      if (rbind.status === 'rejected') {
        const e = wrapDriverError(rbind.reason, 'bind');
        refused = rb.status === 'fulfilled' && isFenced(e);
        throw e;
      }
      const tx: ScopedTransaction = Object.freeze({
        tenantId,
        query: async <R extends pg.QueryResultRow>(text: string, params?: unknown[]) => {
          checkText(text, params);
          if (!open) throw new TenantScopeError('INVALID_ARGUMENT', 'transaction is finished');
          const stmt: pg.QueryConfig = { text, values: params };
          if (LEAVES_SESSION_STATE.test(text)) {
            touched = true;
            // Behind a transaction pooler: one statement only, so text cannot end the transaction and go on.
            if (this.#pooler.mode === 'transaction') (stmt as { queryMode?: string }).queryMode = 'extended';
          }
          try {
            return await client.query<R>(stmt);
          } catch (err) {
            failed = true;
            throw wrapDriverError(err, 'query');
          }
        },
      });
      const out = await fn(tx);
      open = false;
      if (failed) throw pgError('PG_QUERY_FAILED', 'a statement in the transaction failed; rolled back');
      try {
        if (touched && this.#pooler.mode === 'transaction') {
          for (const c of sessionCleanup(this.#pooler)) await client.query(c);
        }
        await client.query('COMMIT');
      } catch (err) {
        throw wrapDriverError(err, 'commit');
      }
      return out;
    } catch (err) {
      // A fenced tenant's refused bind (before any of fn's work) leaves nothing behind once rolled back.
      failed = !refused;
      open = false;
      await client.query('ROLLBACK').catch(() => undefined);
      // The callback's own errors pass through unchanged; ours are already typed.
      throw err;
    } finally {
      open = false;
      const idle = (client as unknown as { getTransactionStatus?: () => string | null }).getTransactionStatus?.();
      client.release(
        failed || (idle !== undefined && idle !== 'I') ? new Error('tenantscope: connection discarded') : undefined,
      );
    }
  }
}

/**
 * Text that may leave state in the session beyond its transaction (a WITH HOLD cursor, a prepared
 * statement, LISTEN, a session setting, a session advisory lock, a temp table, or transaction
 * control that ends ours).
 * After such a statement the connection is destroyed rather than pooled. Defence in depth: the
 * binding itself does not depend on it, and agent SQL belongs in `queryUntrusted`.
 */
const LEAVES_SESSION_STATE =
  /(^|;)\s*(declare|prepare|deallocate|listen|set|reset|discard|create|do|call|load|copy|begin|start|commit|end|rollback|abort|savepoint|release|lock)\b|set_config|\bpg_(try_)?advisory_lock(_shared)?\s*\(|\bwith\s+hold\b|\binto\s+(temp|temporary|unlogged)\b|;\s*\S|\/\*|--/i;

/** `host:port` a config or URL dials, or undefined when it cannot be told. */
function frontOf(c: string | pg.ClientConfig): string | undefined {
  try {
    const cfg = typeof c === 'string' ? { connectionString: c } : c;
    const u = cfg.connectionString ? new URL(cfg.connectionString) : undefined;
    const host = u?.hostname || cfg.host;
    return host ? `${host}:${u?.port || cfg.port || 5432}` : undefined;
  } catch {
    return undefined;
  }
}

const NOT_STARTED = () => false;

/** A bind refused at a database where a move fenced the tenant (errors.ts maps SQLSTATE TSF01). */
function isFenced(err: unknown): boolean {
  return (
    err instanceof TenantScopeError &&
    err.code === 'PLACEMENT_PAUSED' &&
    (err.details as { fenced?: unknown } | undefined)?.fenced === true
  );
}

function checkText(text: unknown, params: unknown): void {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new TenantScopeError('INVALID_ARGUMENT', 'query text must be a non-empty string');
  }
  if (params !== undefined && !Array.isArray(params)) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'query params must be an array');
  }
}
