/**
 * Moving a tenant's rows between the shared database and a database of its own (same server, same
 * role, the same tables installed with `installTenantScope` + `tenantTableSql` and the same binding
 * key). Every read and write runs bound to the tenant, so row-level security confines each step to
 * its rows on both sides, even in a database that holds other tenants.
 */
import type { Tenant } from '@tenantscope/core';
import {
  databaseUrl,
  pg,
  quoteIdent,
  readBindingKey,
  type ScopedPool,
  type ScopedTransaction,
  scopedPool,
  type TierTarget,
} from '@tenantscope/postgres';
import { postgresUrl } from '../dsar/config.ts';
import { confinement, type Stores } from '../dsar/stores.ts';
import { cliError } from '../errors.ts';
import type { Measure, StoreMover } from './run.ts';

const BATCH = 500;

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
    if (at.tier === 'shared') return this.#s.scoped;
    const db = at.target as string;
    const open = this.#dedicated.get(db);
    if (open) return open.pool;
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
      this.#dedicated.set(db, { pool, admin });
      return pool;
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
    const dst = (await this.#pool(to)).forTenant(tenant);
    await src.transaction(
      async (stx) => {
        await dst.transaction(async (dtx) => {
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
        });
      },
      { readOnly: true, isolation: 'repeatable read' },
    );
  }

  async wipe(at: TierTarget): Promise<void> {
    const db = (await this.#pool(at)).forTenant(await this.#t());
    await db.transaction(async (tx) => {
      for (const t of this.#tables) await tx.query(`DELETE FROM ${t.sql}`);
    });
  }

  async close(): Promise<void> {
    for (const { pool, admin } of this.#dedicated.values()) {
      await Promise.allSettled([pool.end(), admin.end()]);
    }
    this.#dedicated.clear();
  }
}
