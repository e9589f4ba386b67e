import { TenantScopeError } from '@tenantscope/core';
import { pgError, wrapDriverError } from './errors.ts';
import type { Queryable } from './sql.ts';

/** What `TierPools` holds: anything that can be ended (a `ScopedPool` on one tenant database). */
export interface Endable {
  end(): Promise<void>;
}

/** A pool lent out for one operation; `release()` exactly once when the operation is done. */
export interface Lease<P> {
  readonly pool: P;
  release(): void;
}

interface Entry<P> {
  readonly key: string;
  readonly pool: P;
  /** The pool's first-use check (role, install, RLS); a failure removes the entry. */
  ready: Promise<void>;
  inflight: number;
  draining: boolean;
}

export interface TierPoolsOptions<P> {
  /** Most pools alive at once, draining ones included. */
  maxPools: number;
  /** How long `acquire` waits for a free slot before PG_UNAVAILABLE, in ms. */
  acquireTimeoutMs: number;
  /** How long a refused (or unreachable) database's error is answered without trying again, in ms. Default 1000. */
  refusalMs?: number;
  /** Opens the pool for a key (a connection string). */
  create(key: string): P;
  /** Checks a new pool before its first operation; throws a typed error to refuse it. */
  check(pool: P): Promise<void>;
}

/**
 * A bounded LRU of pools, one per dedicated tenant database. At most `maxPools` pools exist at
 * once, draining ones included: to open another, the least recently used idle pool is evicted and
 * ended (if every pool is busy, the least recently used one stops taking operations and is ended
 * once its in-flight operations finish). A caller that finds no slot waits, at most
 * `acquireTimeoutMs`, then fails with PG_UNAVAILABLE. @internal
 */
export class TierPools<P extends Endable> {
  readonly #o: TierPoolsOptions<P>;
  /** Live pools in LRU order (first = least recently used). */
  readonly #live = new Map<string, Entry<P>>();
  readonly #draining = new Set<Entry<P>>();
  #waiters: (() => void)[] = [];
  /** Callers that need a new pool, first come first served: only the head may open or evict. */
  readonly #queue: object[] = [];
  /** Recent refusals (first-use check failed), so a bad target is not reconnected on every call. Bounded. */
  readonly #refused = new Map<string, { until: number; err: unknown }>();
  #ended = false;
  #created = 0;
  #evicted = 0;
  #peak = 0;

  constructor(options: TierPoolsOptions<P>) {
    if (!Number.isInteger(options.maxPools) || options.maxPools < 1 || options.maxPools > 10_000) {
      throw new TenantScopeError('INVALID_CONFIG', 'maxTenantPools must be an integer from 1 to 10000');
    }
    this.#o = options;
  }

  /** Pools alive now (live + draining), the most ever alive at once, and how many were created and evicted. */
  stats(): { pools: number; draining: number; peak: number; created: number; evicted: number } {
    return {
      pools: this.#live.size + this.#draining.size,
      draining: this.#draining.size,
      peak: this.#peak,
      created: this.#created,
      evicted: this.#evicted,
    };
  }

  async acquire(key: string): Promise<Lease<P>> {
    const deadline = Date.now() + this.#o.acquireTimeoutMs;
    let ticket: object | undefined;
    const leave = () => {
      const i = ticket ? this.#queue.indexOf(ticket) : -1;
      if (i >= 0) {
        this.#queue.splice(i, 1);
        this.#wake();
      }
    };
    for (;;) {
      if (this.#ended) {
        leave();
        throw pgError('PG_UNAVAILABLE', 'scoped pool has ended');
      }
      const refused = this.#refused.get(key);
      if (refused && refused.until > Date.now()) {
        leave();
        throw refused.err;
      }
      const hit = this.#live.get(key);
      if (hit) {
        leave();
        // Most recently used goes last.
        this.#live.delete(key);
        this.#live.set(key, hit);
        hit.inflight++;
        const lease = this.#lease(hit);
        try {
          await hit.ready;
        } catch (err) {
          lease.release();
          throw err;
        }
        return lease;
      }
      if (!ticket) {
        ticket = {};
        this.#queue.push(ticket);
      }
      if (this.#queue[0] === ticket) {
        if (this.#live.size + this.#draining.size < this.#o.maxPools) {
          this.#open(key);
          continue;
        }
        this.#evictOne();
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        leave();
        throw pgError('PG_UNAVAILABLE', 'no free tenant database pool (maxTenantPools reached)');
      }
      await this.#wait(left);
    }
  }

  #open(key: string): void {
    const pool = this.#o.create(key);
    const entry: Entry<P> = { key, pool, ready: Promise.resolve(), inflight: 0, draining: false };
    entry.ready = this.#o.check(pool).catch((err: unknown) => {
      // Refused or unreachable: never reused; after `refusalMs` the next operation opens and checks a new pool.
      this.#refused.delete(key);
      this.#refused.set(key, { until: Date.now() + (this.#o.refusalMs ?? 1000), err });
      if (this.#refused.size > this.#o.maxPools * 4) {
        const oldest = this.#refused.keys().next().value;
        if (oldest !== undefined) this.#refused.delete(oldest);
      }
      this.#drain(entry);
      throw err;
    });
    entry.ready.catch(() => undefined);
    this.#live.set(key, entry);
    this.#created++;
    this.#peak = Math.max(this.#peak, this.#live.size + this.#draining.size);
  }

  /**
   * Evicts the least recently used idle pool; if every pool is busy and none is draining yet, the
   * least recently used busy one (it takes no new operations and ends when its last one does).
   */
  #evictOne(): void {
    let victim: Entry<P> | undefined;
    for (const e of this.#live.values()) {
      if (e.inflight === 0) {
        victim = e;
        break;
      }
      if (this.#draining.size === 0) victim ??= e;
    }
    if (victim) {
      this.#evicted++;
      this.#drain(victim);
    }
  }

  #drain(e: Entry<P>): void {
    if (e.draining) return;
    e.draining = true;
    if (this.#live.get(e.key) === e) this.#live.delete(e.key);
    this.#draining.add(e);
    if (e.inflight === 0) this.#end(e);
  }

  #end(e: Entry<P>): void {
    void e.pool
      .end()
      .catch(() => undefined)
      .finally(() => {
        this.#draining.delete(e);
        this.#wake();
      });
  }

  #lease(e: Entry<P>): Lease<P> {
    let done = false;
    return {
      pool: e.pool,
      release: () => {
        if (done) return;
        done = true;
        e.inflight--;
        if (e.inflight === 0) {
          if (e.draining) this.#end(e);
          else this.#wake();
        }
      },
    };
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Ends every pool, waiting for their in-flight operations. */
  async end(): Promise<void> {
    this.#ended = true;
    const all = [...this.#live.values(), ...this.#draining];
    this.#live.clear();
    this.#wake();
    await Promise.allSettled(all.map((e) => e.pool.end()));
    this.#draining.clear();
  }
}

/**
 * The first-use check of a tenant database, on the role the pool connects as: the same refusals
 * as the shared pool's doctor (superuser, BYPASSRLS, able to become either), `tenantscope`
 * installed, and every table with a `tenant_id` column under ENABLE + FORCE row-level security
 * with a policy (the second wall). Fails with PG_PLACEMENT_REFUSED and the problem codes (no
 * names from the database in the message). @internal
 */
export async function checkTenantDatabase(pool: Queryable): Promise<void> {
  let row: Record<string, boolean> | undefined;
  try {
    row = (
      await pool.query<Record<string, boolean>>(
        `SELECT r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
                EXISTS (SELECT 1 FROM pg_catalog.pg_roles p
                        WHERE (p.rolsuper OR p.rolbypassrls) AND p.rolname <> current_user
                          AND pg_catalog.pg_has_role(current_user, p.oid, 'MEMBER')) AS escalate,
                pg_catalog.to_regprocedure('tenantscope.current_tenant_id()') IS NULL AS not_installed,
                EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantscope')
                          AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
                               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy po WHERE po.polrelid = c.oid))) AS rls_off
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
      )
    ).rows[0];
  } catch (err) {
    throw wrapDriverError(err, 'tenant database check');
  }
  const problems = row
    ? Object.entries({
        ROLE_SUPERUSER: row.superuser,
        ROLE_BYPASSRLS: row.bypassrls,
        ROLE_CAN_BECOME_PRIVILEGED: row.escalate,
        NOT_INSTALLED: row.not_installed,
        RLS_OFF: row.rls_off,
      })
        .filter(([, bad]) => bad)
        .map(([code]) => code)
    : ['ROLE_UNKNOWN'];
  if (problems.length > 0) {
    throw pgError('PG_PLACEMENT_REFUSED', `tenant database refused: ${problems.join(', ')}`, { details: { problems } });
  }
}
