import {
  type AuditEvent,
  type AuditSink,
  argsHash,
  assertTenant,
  type DeleteResult,
  type StoreCount,
  type Tenant,
  type TenantDataOps,
  TenantScopeError,
} from '@tenantscope/core';
import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import { pgError, wrapDriverError } from './errors.ts';
import type { ScopedPool } from './scoped.ts';
import { quoteIdent } from './sql.ts';

export interface TenantDataOptions {
  /** The tenant tables, as created with `tenantTableSql` (names, optionally schema-qualified). */
  tables: string[];
  /** Where each operation is audited. A failed audit write fails the operation (a delete is rolled back). */
  audit: AuditSink;
  /** Who runs the operation, recorded as the event's subject. Default the tenant's subject. */
  actor?: string;
  /** Rows fetched per cursor round trip during export. Default 500. */
  batchSize?: number;
}

export interface ExportedRow {
  table: string;
  row: Record<string, unknown>;
}

/**
 * Tenant data operations for data subject requests (DSAR), each its own transaction, each audited.
 * @deprecated use `scopedPool({ ..., dsar: { tables, audit } }).tenantData(tenant)`.
 */
export interface TenantData {
  /** Rows per table for the tenant, in one read-only snapshot. Audited as `dsar_count`. */
  count(tenant: Tenant): Promise<Record<string, number>>;
  /**
   * Every row of the tenant, table by table, streamed through a cursor on a dedicated,
   * non-pipelined connection in one REPEATABLE READ READ ONLY transaction. Audited as
   * `dsar_export` when the stream ends (or fails, or is abandoned).
   */
  export(tenant: Tenant): AsyncGenerator<ExportedRow>;
  /** Deletes every row of the tenant in one transaction; audited (as `dsar_delete`) before it commits. */
  delete(tenant: Tenant): Promise<Record<string, number>>;
}

/**
 * DSAR operations over `scoped`'s tenant tables.
 * @deprecated use `scopedPool({ ..., dsar: { tables, audit } }).tenantData(tenant)`.
 */
export function tenantData(scoped: ScopedPool, options: TenantDataOptions): TenantData {
  if (!options || !Array.isArray(options.tables) || options.tables.length === 0) {
    throw new TenantScopeError('INVALID_CONFIG', 'tenantData needs the list of tenant tables');
  }
  if (!options.audit || typeof options.audit.write !== 'function') {
    throw new TenantScopeError('INVALID_CONFIG', 'tenantData needs an audit sink');
  }
  const tables = options.tables.map((t) => ({ name: t, sql: quoteIdent(t, 'table') }));
  const names = tables.map((t) => t.name);
  const batchSize = options.batchSize ?? 500;

  async function audit(
    tenant: Tenant,
    op: string,
    started: number,
    status: 'ok' | 'error',
    reason: string | null,
    detail: unknown,
  ) {
    const event: AuditEvent = {
      timestamp: new Date().toISOString(),
      tenant_id: tenant.id,
      session_id: null,
      subject: options.actor ?? tenant.subject,
      event_type: `dsar_${op}`,
      tool_name: null,
      args_hash: argsHash({ op, tables: names, detail }),
      result_status: status,
      reason,
      latency_ms: Math.round(performance.now() - started),
      ip_address: null,
    };
    try {
      await options.audit.write(event);
    } catch (err) {
      throw new TenantScopeError('AUDIT_WRITE_FAILED', `dsar ${op}: audit write failed`, { cause: err });
    }
  }
  const codeOf = (err: unknown) => (err as { code?: string })?.code ?? 'INTERNAL';

  return {
    async count(tenant) {
      assertTenant(tenant, 'tenantData.count');
      const started = performance.now();
      let counts: Record<string, number>;
      try {
        counts = await scoped.forTenant(tenant).transaction(
          async (tx) => {
            const out: Record<string, number> = {};
            for (const t of tables) {
              const r = await tx.query<{ n: string }>(`SELECT count(*) AS n FROM ${t.sql}`);
              out[t.name] = Number(r.rows[0]?.n ?? 0);
            }
            return out;
          },
          { readOnly: true, isolation: 'repeatable read' },
        );
      } catch (err) {
        await audit(tenant, 'count', started, 'error', codeOf(err), null);
        throw err;
      }
      await audit(tenant, 'count', started, 'ok', null, counts);
      return counts;
    },

    async *export(tenant) {
      assertTenant(tenant, 'tenantData.export');
      const started = performance.now();
      const { client, finish } = await scoped.cursorCheckout(tenant, true);
      let ok = false;
      let rows = 0;
      let reason: string | null = 'ABANDONED';
      try {
        for (const t of tables) {
          const stream = client.query(
            new QueryStream(`SELECT * FROM ${t.sql}`, [], { batchSize }) as unknown as pg.QueryConfig,
          ) as unknown as AsyncIterable<Record<string, unknown>>;
          try {
            for await (const row of stream) {
              rows++;
              yield { table: t.name, row };
            }
          } catch (err) {
            reason = codeOf(err);
            throw wrapDriverError(err, 'export');
          }
        }
        ok = true;
        reason = null;
      } finally {
        await finish(ok).catch(() => undefined);
        await audit(tenant, 'export', started, ok ? 'ok' : 'error', reason, { rows });
      }
    },

    async delete(tenant) {
      assertTenant(tenant, 'tenantData.delete');
      const started = performance.now();
      try {
        return await scoped.forTenant(tenant).transaction(async (tx) => {
          const out: Record<string, number> = {};
          for (const t of tables) {
            const r = await tx.query(`DELETE FROM ${t.sql}`);
            out[t.name] = r.rowCount ?? 0;
          }
          // Audited before COMMIT: if the audit cannot be written, nothing is deleted.
          await audit(tenant, 'delete', started, 'ok', null, out);
          return out;
        });
      } catch (err) {
        if (codeOf(err) !== 'AUDIT_WRITE_FAILED') await audit(tenant, 'delete', started, 'error', codeOf(err), null);
        throw err;
      }
    },
  };
}

/** One tenant's rows under the shared DSAR contract (`TenantDataOps`); each operation is audited. */
export class PgTenantData implements TenantDataOps<ExportedRow> {
  readonly store = 'postgres';
  readonly #data: TenantData;
  readonly #tenant: Tenant;

  /** @internal Built by `ScopedPool.tenantData`. */
  constructor(data: TenantData, tenant: Tenant) {
    this.#data = data;
    this.#tenant = tenant;
  }

  /** Rows per table (`parts`) in one read-only snapshot. Audited as `dsar_count`. */
  async count(): Promise<StoreCount> {
    return rowCount(await this.#data.count(this.#tenant));
  }

  /** Every row, table by table, through a cursor in one REPEATABLE READ READ ONLY transaction. Audited as `dsar_export`. */
  export(): AsyncGenerator<ExportedRow> {
    return this.#data.export(this.#tenant);
  }

  /** Deletes every row in one transaction (audited as `dsar_delete` before COMMIT), then recounts; throws PG_DSAR_INCOMPLETE unless 0. */
  async delete(): Promise<DeleteResult> {
    const before = rowCount(await this.#data.delete(this.#tenant));
    const after = await this.count();
    if (after.total !== 0) {
      throw pgError('PG_DSAR_INCOMPLETE', `${after.total} row(s) remained after the delete`, {
        details: { remaining: after.total },
      });
    }
    return { before, after };
  }
}

function rowCount(parts: Record<string, number>): StoreCount {
  return { store: 'postgres', total: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}
