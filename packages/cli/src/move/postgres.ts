/**
 * Moving a tenant's rows between the shared database and a database of its own (same server, same
 * role, the same tables installed with `installTenantScope` + `tenantTableSql` and the same binding
 * key). Every read and write runs bound to the tenant, so row-level security confines each step to
 * its rows on both sides, even in a database that holds other tenants.
 */
import type { Tenant } from '@tenantscope/core';
import {
  databaseUrl,
  exclusiveTransaction,
  fenceTenant,
  pg,
  quoteIdent,
  readBindingKey,
  type ScopedPool,
  type ScopedTransaction,
  scopedPool,
  type TierTarget,
  unfenceTenant,
} from '@tenantscope/postgres';
import { postgresUrl } from '../dsar/config.ts';
import { confinement, type Stores } from '../dsar/stores.ts';
import { cliError } from '../errors.ts';
import type { Measure, StoreMover } from './run.ts';

const BATCH = 500;
/**
 * How long the fence waits for the tenant's transactions already admitted at the old place (and
 * the mover's own writes for other holders of the tenant's key) before the step fails; a rerun
 * resumes. `TENANTSCOPE_MOVE_FENCE_WAIT_MS` overrides it.
 */
const FENCE_WAIT_MS = 15_000;

function fenceWaitMs(): number {
  const v = process.env.TENANTSCOPE_MOVE_FENCE_WAIT_MS;
  if (v === undefined || v === '') return FENCE_WAIT_MS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 3_600_000) {
    throw cliError('CLI_CONFIG_INVALID', 'TENANTSCOPE_MOVE_FENCE_WAIT_MS must be an integer from 1 to 3600000');
  }
  return n;
}

/** sum of the first 60 bits of md5(row as jsonb): a count-and-checksum that does not depend on row order. */
const measureSql = (t: string) =>
  `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(to_jsonb(x)::text), 1, 15))::bit(60)::bigint), 0)::text AS sum FROM ${t} x`;

export class PostgresMover implements StoreMover {
  readonly store = 'postgres' as const;
  readonly #s: Stores;
  readonly #tenantId: string;
  readonly #tables: { name: string; sql: string }[];
  readonly #dedicated = new Map<string, { pool: ScopedPool; admin: pg.Pool }>();
  #tenant: Tenant | undefined;

  constructor(s: Stores, tenantId: string) {
    this.#s = s;
    this.#tenantId = tenantId;
    // Config order: children before parents (deletion order).
    this.#tables = s.cfg.postgres.tables.map((t) => ({ name: t.name, sql: quoteIdent(t.name, 'table') }));
  }

  async #t(): Promise<Tenant> {
    this.#tenant ??= await this.#s.tenant(this.#tenantId);
    return this.#tenant;
  }

  /** The scoped pool of a place: the configured (shared) database, or the tenant's own on the same server. */
  async #pool(at: TierTarget): Promise<ScopedPool> {
    return (await this.#place(at)).pool;
  }

  /** The scoped pool and the unscoped admin pool (the config's role: it owns schema tenantscope) of a place. */
  async #place(at: TierTarget): Promise<{ pool: ScopedPool; admin: pg.Pool }> {
    if (at.tier === 'shared') return { pool: this.#s.scoped, admin: this.#s.admin };
    const db = at.target as string;
    const open = this.#dedicated.get(db);
    if (open) return open;
    let url: string;
    try {
      url = databaseUrl(postgresUrl(this.#s.cfg), db);
    } catch (cause) {
      throw cliError('CLI_USAGE', '--target: not a database name', { cause });
    }
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    admin.on('error', () => undefined);
    try {
      await this.#checkTables(admin, db);
      const env = this.#s.cfg.postgres.bindingKeyEnv;
      const bindingKey = env ? Buffer.from(process.env[env] ?? '', 'hex') : await readBindingKey(admin);
      const pool = scopedPool({ connectionString: url, max: 2 }, { bindingKey, pooler: this.#s.cfg.postgres.pooler });
      const place = { pool, admin };
      this.#dedicated.set(db, place);
      return place;
    } catch (err) {
      await admin.end().catch(() => undefined);
      if ((err as { code?: string }).code?.startsWith('CLI_')) throw err;
      throw cliError('CLI_STORE_FAILED', `postgres: database ${db}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The tenant's own database must hold every configured table, confined by row-level security for this role. */
  async #checkTables(admin: pg.Pool, db: string): Promise<void> {
    for (const t of this.#tables) {
      const state = await confinement(admin, t.name);
      if (state === 'missing') {
        throw cliError('CLI_USAGE', `--target ${db}: no table ${t.name} there (provision the database first)`);
      }
      if (state === 'unconfined') {
        throw cliError('CLI_USAGE', `--target ${db}: ${t.name} is not confined by row-level security for this role`);
      }
    }
  }

  async #measureIn(tx: ScopedTransaction): Promise<Measure> {
    const parts: Measure['parts'] = {};
    let total = 0;
    for (const t of this.#tables) {
      const r = (await tx.query<{ n: string; sum: string }>(measureSql(t.sql))).rows[0];
      const n = Number(r?.n ?? 0);
      parts[t.name] = { n, sum: r?.sum ?? '0' };
      total += n;
    }
    return { total, parts };
  }

  async measure(at: TierTarget): Promise<Measure> {
    const db = (await this.#pool(at)).forTenant(await this.#t());
    return db.transaction((tx) => this.#measureIn(tx), { readOnly: true, isolation: 'repeatable read' });
  }

  /**
   * One snapshot of the source; in one transaction on the destination, the tenant's rows there are
   * deleted (children first) and the source's inserted (parents first). Skipped when equal already.
   */
  async copy(from: TierTarget, to: TierTarget): Promise<void> {
    const tenant = await this.#t();
    const src = (await this.#pool(from)).forTenant(tenant);
    const dst = await this.#pool(to);
    await src.transaction(
      async (stx) => {
        // The destination may still carry a fence from a move away from it: the mover's own
        // transaction passes it (and holds the tenant's key there while it writes).
        await exclusiveTransaction(
          dst,
          tenant,
          async (dtx) => {
            const a = await this.#measureIn(stx);
            const b = await this.#measureIn(dtx);
            if (JSON.stringify(a) === JSON.stringify(b)) return;
            for (const t of this.#tables) await dtx.query(`DELETE FROM ${t.sql}`);
            for (const t of [...this.#tables].reverse()) {
              await stx.query(`DECLARE ts_move NO SCROLL CURSOR FOR SELECT to_jsonb(x)::text AS j FROM ${t.sql} x`);
              for (;;) {
                const rows = (await stx.query<{ j: string }>(`FETCH ${BATCH} FROM ts_move`)).rows;
                if (rows.length === 0) break;
                await dtx.query(
                  `INSERT INTO ${t.sql} SELECT * FROM jsonb_populate_recordset(NULL::${t.sql}, $1::jsonb)`,
                  [`[${rows.map((r) => r.j).join(',')}]`],
                );
              }
              await stx.query('CLOSE ts_move');
            }
          },
          { lockTimeoutMs: fenceWaitMs() },
        );
      },
      { readOnly: true, isolation: 'repeatable read' },
    );
  }

  /** Deletes the tenant's rows at `at`, fenced or not (the old place is fenced by then). */
  async wipe(at: TierTarget): Promise<void> {
    await exclusiveTransaction(
      await this.#pool(at),
      await this.#t(),
      async (tx) => {
        for (const t of this.#tables) await tx.query(`DELETE FROM ${t.sql}`);
      },
      { lockTimeoutMs: fenceWaitMs() },
    );
  }

  /**
   * The old place refuses the tenant's writes (a fence row in its `tenantscope.fence`, checked by
   * every bind there), then waits for the ones admitted before. `TENANTSCOPE_TEST_NO_FENCE=1`
   * (tests only) skips it, to show what the fence prevents.
   */
  async fence(at: TierTarget): Promise<void> {
    if (process.env.TENANTSCOPE_TEST_NO_FENCE === '1') return;
    const { admin } = await this.#place(at);
    await fenceTenant(admin, this.#tenantId, { lockTimeoutMs: fenceWaitMs() });
  }

  /** The tenant may write at `at` again (the destination of a move back, or the old place on a rollback). */
  async unfence(at: TierTarget): Promise<void> {
    const { admin } = await this.#place(at);
    await unfenceTenant(admin, this.#tenantId);
  }

  async close(): Promise<void> {
    for (const { pool, admin } of this.#dedicated.values()) {
      await Promise.allSettled([pool.end(), admin.end()]);
    }
    this.#dedicated.clear();
  }
}
