/**
 * The placement registry: one table in PostgreSQL that says, per tenant and store, which tier the
 * tenant's data is on (no row = shared), and the state of a move between tiers. Adapters resolve a
 * tenant's placement through it on every operation (cached, bounded, invalidated by LISTEN/NOTIFY
 * with a TTL as the fallback); `tenantscope tenant move` drives the move steps.
 */
import {
  BoundedLru,
  errorFactory,
  type PlacementBase,
  type PlacementResolver,
  TenantScopeError,
  type Tier,
} from '@tenantscope/core';
import type pg from 'pg';
import { Listener } from './replica-state.ts';

/** The registry's error codes, with their HTTP status. Callers switch on `code`. */
export const PLACEMENT_ERROR_CODES = {
  /** The tenant is being moved in this store and its calls are paused: retry (`details.retryAfterMs`). */
  PLACEMENT_PAUSED: 503,
  /** A registry row this code cannot serve (unknown store, tier or state; a malformed target). Fails closed. */
  PLACEMENT_INVALID: 500,
  /** The registry could not be read or written. */
  PLACEMENT_UNAVAILABLE: 503,
  /** A move step that does not fit the tenant's current move (another destination, wrong state). */
  PLACEMENT_MOVE_CONFLICT: 409,
} as const;
export type PlacementErrorCode = keyof typeof PLACEMENT_ERROR_CODES;
export const placementError = errorFactory(PLACEMENT_ERROR_CODES);

/** The stores the registry places. */
export const PLACEMENT_STORES = ['postgres', 's3', 'qdrant'] as const;
export type PlacementStore = (typeof PLACEMENT_STORES)[number];

/**
 * `active`: no move. `copying`: a move has begun; calls still go to the current place.
 * `paused`: the tenant's calls in this store wait, then fail with PLACEMENT_PAUSED (retryable).
 * `cleanup`: switched; calls go to the new place while the old copy is deleted.
 */
export type MoveState = 'active' | 'copying' | 'paused' | 'cleanup';

/** A tier and its store-specific target: database (postgres), bucket (s3), collection (qdrant); null when shared. */
export interface TierTarget {
  readonly tier: Tier;
  readonly target: string | null;
}

export interface PlacementEntry extends TierTarget {
  readonly tenant: string;
  readonly store: PlacementStore;
  readonly state: MoveState;
  /** copying/paused: where the tenant is going. cleanup: where it came from (the copy being deleted). */
  readonly other: TierTarget | null;
  /** Bumped by every change. */
  readonly version: number;
  readonly updatedAt: Date;
}

export interface PlacementRegistryOptions {
  /** A pool on the database holding the registry (the shared database). Reads only, for the app; the CLI writes. */
  pool: pg.Pool;
  /** Schema of the `placements` table. Default `tenantscope_placement`. */
  schema?: string;
  /**
   * A direct (or session-pooled) connection for LISTEN: a move reaches this process within
   * milliseconds. Without it (or while it reconnects) a cached placement lives at most `cacheMs`.
   */
  listenConnectionString?: string;
  /** How long (ms) a resolved placement is reused. Default 1000. Bounds staleness without LISTEN. */
  cacheMs?: number;
  /** Most (tenant, store) placements cached per resolver. Default 10,000. */
  maxEntries?: number;
  /** How long (ms) a call of a paused tenant waits for the move to switch before PLACEMENT_PAUSED. Default 2000. */
  pauseWaitMs?: number;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;
const TIERS: readonly string[] = ['shared', 'dedicated'];
const STATES: readonly string[] = ['active', 'copying', 'paused', 'cleanup'];
/** Per store: what a dedicated target may look like (database name, bucket name, collection name). */
const TARGET: Record<PlacementStore, RegExp> = {
  postgres: /^[a-z_][a-z0-9_]{0,62}$/,
  s3: /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/,
  qdrant: /^[A-Za-z0-9_-]{1,255}$/,
};
const TENANT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function checkStore(store: unknown): PlacementStore {
  if (!(PLACEMENT_STORES as readonly unknown[]).includes(store)) {
    throw placementError('PLACEMENT_INVALID', `unknown store (expected one of ${PLACEMENT_STORES.join(', ')})`);
  }
  return store as PlacementStore;
}

/** Checks a tier and target for a store; throws PLACEMENT_INVALID. */
export function checkTierTarget(store: PlacementStore, t: { tier: unknown; target: unknown }): TierTarget {
  if (!TIERS.includes(t.tier as string)) throw placementError('PLACEMENT_INVALID', `${store}: unknown tier`);
  if (t.tier === 'shared') {
    if (t.target !== null && t.target !== undefined)
      throw placementError('PLACEMENT_INVALID', `${store}: a shared placement has no target`);
    return { tier: 'shared', target: null };
  }
  if (typeof t.target !== 'string' || !TARGET[store].test(t.target)) {
    throw placementError('PLACEMENT_INVALID', `${store}: a dedicated placement needs a valid target`);
  }
  return { tier: 'dedicated', target: t.target };
}

interface Row {
  tenant: string;
  store: string;
  tier: string;
  target: string | null;
  state: string;
  other_tier: string | null;
  other_target: string | null;
  version: string | number;
  updated_at: Date;
}

/** Validates a stored row; garbage fails closed (PLACEMENT_INVALID, naming no other tenant). */
function toEntry(r: Row): PlacementEntry {
  const store = checkStore(r.store);
  const here = checkTierTarget(store, r);
  if (!STATES.includes(r.state)) throw placementError('PLACEMENT_INVALID', `${store}: unknown move state`);
  const state = r.state as MoveState;
  let other: TierTarget | null = null;
  if (state !== 'active') {
    other = checkTierTarget(store, { tier: r.other_tier, target: r.other_target });
  } else if (r.other_tier !== null) {
    throw placementError('PLACEMENT_INVALID', `${store}: an active placement with a move target`);
  }
  return {
    tenant: r.tenant,
    store,
    tier: here.tier,
    target: here.target,
    state,
    other,
    version: Number(r.version),
    updatedAt: r.updated_at,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Cached<P> {
  until: number;
  placement: P;
}

/**
 * A core `PlacementResolver<P>` that reads only the tenant's id, so it also fits adapters that
 * resolve by id (the S3 client's `TenantRef`).
 */
export type RegistryResolver<P extends PlacementBase> = PlacementResolver<P> &
  ((tenant: { readonly id: string }) => P | Promise<P>) & {
    /**
     * Drops the tenant's cached placement: its next call reads the registry. A scoped pool calls
     * it when a database refuses the tenant because a move fenced it there.
     */
    invalidate(tenantId: string): void;
  };

/** A database URL pointing at another database on the same server (same role, host and options). */
export function databaseUrl(base: string, database: string): string {
  if (!TARGET.postgres.test(database)) throw placementError('PLACEMENT_INVALID', 'postgres: invalid database name');
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

/** `placementRegistry(options)`: see `PlacementRegistry`. */
export function placementRegistry(options: PlacementRegistryOptions): PlacementRegistry {
  return new PlacementRegistry(options);
}

export class PlacementRegistry {
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #channel: string;
  readonly #cacheMs: number;
  readonly #maxEntries: number;
  readonly #pauseWaitMs: number;
  readonly #caches = new Set<BoundedLru<string, Cached<unknown>>>();
  readonly #reads = new Map<string, Promise<PlacementEntry | undefined>>();
  readonly #listener: Listener | undefined;

  constructor(options: PlacementRegistryOptions) {
    if (!options || typeof options.pool?.query !== 'function') {
      throw new TenantScopeError('INVALID_CONFIG', 'placementRegistry needs options.pool (a pg.Pool)');
    }
    const schema = options.schema ?? 'tenantscope_placement';
    if (!SCHEMA.test(schema)) throw new TenantScopeError('INVALID_CONFIG', 'schema must be a lowercase identifier');
    const num = (v: number | undefined, d: number, name: string, min: number) => {
      const n = v ?? d;
      if (!Number.isInteger(n) || n < min)
        throw new TenantScopeError('INVALID_CONFIG', `${name} must be an integer >= ${min}`);
      return n;
    };
    this.#pool = options.pool;
    this.#table = `"${schema}".placements`;
    this.#channel = schema;
    this.#cacheMs = num(options.cacheMs, 1000, 'cacheMs', 0);
    this.#maxEntries = num(options.maxEntries, 10_000, 'maxEntries', 1);
    this.#pauseWaitMs = num(options.pauseWaitMs, 2000, 'pauseWaitMs', 0);
    if (options.listenConnectionString !== undefined) {
      if (typeof options.listenConnectionString !== 'string')
        throw new TenantScopeError('INVALID_CONFIG', 'listenConnectionString must be a string');
      this.#listener = new Listener(
        { connectionString: options.listenConnectionString },
        this.#channel,
        (payload) => this.#invalidate(payload),
        () => {
          for (const c of this.#caches) for (const k of [...c.entries()].map(([k]) => k)) c.delete(k);
        },
      );
    }
  }

  /** How long a cached placement can outlive a change, without LISTEN. The move waits this long after pausing. */
  get cacheMs(): number {
    return this.#cacheMs;
  }

  /** The registry DDL. Idempotent. */
  sql(): string {
    const t = this.#table;
    return `create schema if not exists "${this.#channel}";
create table if not exists ${t} (
  tenant text not null check (length(tenant) between 1 and 128),
  store text not null check (store in ('postgres', 's3', 'qdrant')),
  tier text not null check (tier in ('shared', 'dedicated')),
  target text check (length(target) between 1 and 255),
  state text not null default 'active' check (state in ('active', 'copying', 'paused', 'cleanup')),
  other_tier text check (other_tier in ('shared', 'dedicated')),
  other_target text check (length(other_target) between 1 and 255),
  version bigint not null default 1,
  updated_at timestamptz not null default now(),
  primary key (tenant, store),
  check ((tier = 'shared') = (target is null)),
  check ((state = 'active') = (other_tier is null))
);`;
  }

  /** Creates the table (a role that may create in the database). */
  async migrate(): Promise<void> {
    await this.#q(this.sql());
  }

  /** With LISTEN: waits until it listens (at most `timeoutMs`) and says whether it does. */
  async listening(timeoutMs = 5000): Promise<boolean> {
    return this.#listener ? this.#listener.ready(timeoutMs) : false;
  }

  /** Closes the LISTEN connection. The pool is the caller's. */
  async close(): Promise<void> {
    await this.#listener?.close();
  }

  /** The tenant's row in a store, uncached; undefined = shared, no move. */
  async get(tenant: string, store: PlacementStore): Promise<PlacementEntry | undefined> {
    checkStore(store);
    const r = await this.#q<Row>(`select * from ${this.#table} where tenant = $1 and store = $2`, [tenant, store]);
    return r.rows[0] ? toEntry(r.rows[0]) : undefined;
  }

  /**
   * A `PlacementResolver` for one store: `toPlacement` maps the row's tier and target (and the
   * tenant id) to the store's placement (e.g. a database name to a connection string). Answers from a bounded cache
   * (synchronously when cached); a paused tenant's call waits up to `pauseWaitMs` for the switch,
   * then fails with PLACEMENT_PAUSED. A garbage row fails closed with PLACEMENT_INVALID.
   */
  resolver<P extends PlacementBase>(
    store: PlacementStore,
    toPlacement: (t: TierTarget, tenantId: string) => P,
  ): RegistryResolver<P> {
    checkStore(store);
    if (typeof toPlacement !== 'function')
      throw new TenantScopeError('INVALID_CONFIG', 'toPlacement must be a function');
    const cache = new BoundedLru<string, Cached<P>>(this.#maxEntries);
    this.#caches.add(cache as BoundedLru<string, Cached<unknown>>);
    const place = (t: TierTarget, id: string): P => {
      let p: P;
      try {
        p = toPlacement(t, id);
      } catch (err) {
        throw placementError('PLACEMENT_INVALID', `${store}: toPlacement failed`, { cause: err });
      }
      if (!p || p.tier !== t.tier)
        throw placementError('PLACEMENT_INVALID', `${store}: toPlacement returned another tier`);
      return p;
    };
    const slow = async (id: string, key: string): Promise<P> => {
      const deadline = Date.now() + this.#pauseWaitMs;
      for (;;) {
        const e = await this.#read(id, store);
        if (e?.state !== 'paused') {
          const placement = place(e ? { tier: e.tier, target: e.target } : { tier: 'shared', target: null }, id);
          if (this.#cacheMs > 0) cache.set(key, { until: Date.now() + this.#cacheMs, placement });
          return placement;
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          throw placementError('PLACEMENT_PAUSED', `${store}: this tenant is being moved; retry shortly`, {
            details: { retryAfterMs: 500 },
          });
        }
        await sleep(Math.min(50, left));
      }
    };
    const resolve = (tenant: { readonly id: string }) => {
      const id = (tenant as { id?: unknown })?.id;
      if (typeof id !== 'string' || !TENANT.test(id))
        throw new TenantScopeError('NOT_A_TENANT', 'placement needs a tenant');
      const key = `${store}:${id}`;
      const hit = cache.get(key);
      if (hit && hit.until > Date.now()) return hit.placement;
      return slow(id, key);
    };
    return Object.assign(resolve, { invalidate: (tenantId: string) => void cache.delete(`${store}:${tenantId}`) });
  }

  /** Starts (or resumes) moving `tenant` in `store` to `to`. Another move in progress: PLACEMENT_MOVE_CONFLICT. */
  async beginMove(tenant: string, store: PlacementStore, to: TierTarget): Promise<PlacementEntry> {
    checkStore(store);
    const dest = checkTierTarget(store, to);
    const r = await this.#q<Row>(
      `with w as (
         insert into ${this.#table} as p (tenant, store, tier, target, state, other_tier, other_target)
         values ($1, $2, 'shared', null, 'copying', $3, $4)
         on conflict (tenant, store) do update set state = 'copying', other_tier = excluded.other_tier,
           other_target = excluded.other_target, version = p.version + 1, updated_at = now()
         where p.state = 'active' and (p.tier, coalesce(p.target, '')) is distinct from ($3, coalesce($4, ''))
         returning *)
       select w.*, pg_notify('${this.#channel}', $2 || ':' || $1) from w`,
      [tenant, store, dest.tier, dest.target],
    );
    if (r.rows[0]) return this.#changed(toEntry(r.rows[0]));
    const now = await this.get(tenant, store);
    if (now && (now.state === 'copying' || now.state === 'paused') && sameTarget(now.other, dest)) return now;
    throw placementError(
      'PLACEMENT_MOVE_CONFLICT',
      now && now.state !== 'active'
        ? `${store}: another move of this tenant is in progress (${now.state})`
        : `${store}: the tenant is already on that placement`,
      { details: { state: now?.state ?? 'active' } },
    );
  }

  /** copying → paused: the tenant's calls in this store wait / fail with PLACEMENT_PAUSED. */
  pause(tenant: string, store: PlacementStore): Promise<PlacementEntry> {
    return this.#step(tenant, store, ['copying', 'paused'], `state = 'paused'`);
  }

  /** paused → cleanup: calls go to the new place; the old one is recorded for deletion. */
  switchPlacement(tenant: string, store: PlacementStore): Promise<PlacementEntry> {
    return this.#step(
      tenant,
      store,
      ['paused'],
      `state = 'cleanup', tier = p.other_tier, target = p.other_target, other_tier = p.tier, other_target = p.target`,
    );
  }

  /** cleanup → active: the old copy is gone. */
  finishMove(tenant: string, store: PlacementStore): Promise<PlacementEntry> {
    return this.#step(tenant, store, ['cleanup'], `state = 'active', other_tier = null, other_target = null`);
  }

  /** copying | paused → active on the old place (rollback). The new copy is the caller's to delete. */
  abortMove(tenant: string, store: PlacementStore): Promise<PlacementEntry> {
    return this.#step(tenant, store, ['copying', 'paused'], `state = 'active', other_tier = null, other_target = null`);
  }

  async #step(tenant: string, store: PlacementStore, from: MoveState[], set: string): Promise<PlacementEntry> {
    checkStore(store);
    const r = await this.#q<Row>(
      `with w as (update ${this.#table} p set ${set}, version = p.version + 1, updated_at = now()
         where tenant = $1 and store = $2 and state = any($3::text[]) returning *)
       select w.*, pg_notify('${this.#channel}', $2 || ':' || $1) from w`,
      [tenant, store, from],
    );
    if (!r.rows[0]) {
      const now = await this.get(tenant, store);
      throw placementError('PLACEMENT_MOVE_CONFLICT', `${store}: no move in state ${from.join('/')} for this tenant`, {
        details: { state: now?.state ?? 'active' },
      });
    }
    return this.#changed(toEntry(r.rows[0]));
  }

  #changed(e: PlacementEntry): PlacementEntry {
    this.#invalidate(`${e.store}:${e.tenant}`);
    return e;
  }

  #invalidate(key: string): void {
    for (const c of this.#caches) c.delete(key);
  }

  /** One read per (tenant, store) in flight, shared by every waiting call. */
  #read(tenant: string, store: PlacementStore): Promise<PlacementEntry | undefined> {
    const key = `${store}:${tenant}`;
    let p = this.#reads.get(key);
    if (!p) {
      p = this.get(tenant, store).finally(() => this.#reads.delete(key));
      this.#reads.set(key, p);
    }
    return p;
  }

  async #q<R extends pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(text, params);
    } catch (err) {
      throw placementError('PLACEMENT_UNAVAILABLE', 'placement registry: query failed', { cause: err });
    }
  }
}

function sameTarget(a: TierTarget | null, b: TierTarget): boolean {
  return !!a && a.tier === b.tier && a.target === b.target;
}
