import { performance } from 'node:perf_hooks';
import { type AuditEvent, canonicalJson, streamName, TenantScopeError } from '@tenantscope/core';
import type { Pool, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { type Anchor, type ChainRow, type StreamReport, type VerifyReport, verifyStream } from '../chain.ts';
import { DEFAULT_RETENTION_DAYS, MIN_RETENTION_DAYS, purgeEvent } from '../event.ts';
import { DEFAULT_AUDIT_SCHEMA, ident, roleSql, STREAM_LOCK_CLASS } from './schema.ts';
import { asRole, checkedRole } from './session.ts';

export interface PostgresAuditStoreOptions {
  /** A pool connected as the auditor role (SELECT on events, SELECT/INSERT on anchors). */
  pool: Pool;
  /** Schema of the audit tables. Default `tenantscope_audit`. */
  schema?: string;
  /** Rows fetched per page while verifying. Default 20,000. */
  pageSize?: number;
  /**
   * The auditor role, when the pool logs in as another role (behind a pooler): each query then runs
   * in its own transaction that starts with `SET LOCAL ROLE <role>`. Default: none.
   */
  role?: string;
}

const raw = { getTypeParser: () => (v: string) => v } as unknown as QueryConfig['types'];

/**
 * The auditor's side of the Postgres audit log: `verify`, `anchor` (checkpoint every stream's
 * head into the anchors table the writer cannot touch) and `events` (read one stream).
 */
export class PostgresAuditStore {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #pageSize: number;
  readonly #skipScan: string;
  readonly #role: string | undefined;

  constructor(options: PostgresAuditStoreOptions) {
    if (!options?.pool) throw new TenantScopeError('INVALID_CONFIG', 'PostgresAuditStore needs a pool');
    this.#pool = options.pool;
    this.#role = checkedRole(options.role);
    this.#schema = ident(options.schema ?? DEFAULT_AUDIT_SCHEMA, 'schema');
    this.#pageSize = options.pageSize ?? 20_000;
    // Distinct streams by a skip scan of the primary key: one index probe per stream, not a full scan.
    this.#skipScan = `s(stream) AS (
        (SELECT stream FROM ${this.#schema}.events ORDER BY stream LIMIT 1)
        UNION ALL
        SELECT (SELECT e.stream FROM ${this.#schema}.events e WHERE e.stream > s.stream ORDER BY e.stream LIMIT 1)
          FROM s WHERE s.stream IS NOT NULL)`;
  }

  #query<R extends QueryResultRow>(config: string | QueryConfig, values?: unknown[]): Promise<QueryResult<R>> {
    return asRole(this.#pool, this.#role, (q) =>
      typeof config === 'string' ? q.query<R>(config, values) : q.query<R>(config),
    );
  }

  /** Every stream that has events or anchors. */
  async streams(): Promise<string[]> {
    const r = await this.#query<{ stream: string }>(
      `WITH RECURSIVE ${this.#skipScan} SELECT stream FROM (SELECT stream FROM s WHERE stream IS NOT NULL
         UNION SELECT DISTINCT stream FROM ${this.#schema}.anchors) x ORDER BY stream`,
    );
    return r.rows.map((x) => x.stream);
  }

  /**
   * Recomputes the chain of one tenant's stream (`null` for the unauthenticated stream), or of
   * every stream when `tenant` is omitted, and reports each stream's first broken link.
   */
  async verify(tenant?: string | null): Promise<VerifyReport> {
    const started = performance.now();
    const names = tenant === undefined ? await this.streams() : [streamName({ tenant_id: tenant })];
    const streams: StreamReport[] = [];
    for (const name of names) streams.push(await this.verifyStream(name));
    return { ok: streams.every((s) => s.ok), streams, elapsedMs: performance.now() - started };
  }

  /** Verifies one stream by its stored name. */
  async verifyStream(stream: string): Promise<StreamReport> {
    const anchors = await this.anchors(stream);
    return verifyStream({
      stream,
      anchors,
      pages: this.#eventPages(stream),
      findByHash: async (hash) => {
        const r = await this.#query<{ seq: string }>(
          `SELECT seq FROM ${this.#schema}.events WHERE stream = $1 AND hash = decode($2, 'hex') ORDER BY seq LIMIT 1`,
          [stream, hash],
        );
        return r.rows[0] ? Number(r.rows[0].seq) : null;
      },
    });
  }

  /** Anchors recorded for a stream, oldest first. */
  async anchors(stream: string): Promise<Anchor[]> {
    const r = await this.#query<{ seq: string; hash: string; kind: 'head' | 'purge'; recorded_at: string }>({
      text: `SELECT seq, encode(hash, 'hex') AS hash, kind, recorded_at FROM ${this.#schema}.anchors
               WHERE stream = $1 ORDER BY id`,
      values: [stream],
      types: raw,
    });
    return r.rows.map((a) => ({
      stream,
      seq: Number(a.seq),
      hash: a.hash,
      kind: a.kind,
      recordedAt: a.recorded_at,
    }));
  }

  /**
   * Checkpoints the head of every stream (or of the given ones) into the anchors table. Run it
   * periodically as the auditor role: tail truncation after an anchor is then detected.
   * Returns the anchors written.
   */
  async anchor(streams?: string[]): Promise<Anchor[]> {
    const r = await this.#query<{ stream: string; seq: string; hash: string }>({
      text: `WITH RECURSIVE ${this.#skipScan}
             INSERT INTO ${this.#schema}.anchors (stream, seq, hash, kind)
             SELECT s.stream, h.seq, h.hash, 'head' FROM s
               CROSS JOIN LATERAL (SELECT e.seq, e.hash FROM ${this.#schema}.events e WHERE e.stream = s.stream
                                   ORDER BY e.seq DESC LIMIT 1) h
              WHERE s.stream IS NOT NULL ${streams ? 'AND s.stream = ANY($1::text[])' : ''}
             RETURNING stream, seq, encode(hash, 'hex') AS hash`,
      values: streams ? [streams] : [],
      types: raw,
    });
    return r.rows.map((a) => ({ stream: a.stream, seq: Number(a.seq), hash: a.hash, kind: 'head' as const }));
  }

  /**
   * Starts anchoring every `intervalMs` (default 60 s). Errors go to `onError`.
   * Returns a function that stops it.
   */
  startAnchoring(intervalMs = 60_000, onError?: (err: unknown) => void): () => void {
    const t = setInterval(() => {
      this.anchor().catch((e) => onError?.(e));
    }, intervalMs);
    t.unref();
    return () => clearInterval(t);
  }

  /** The last `limit` events of one tenant's stream (default 1000), oldest first, with their seq. */
  async events(tenant: string | null, limit = 1000): Promise<(AuditEvent & { seq: number })[]> {
    const stream = streamName({ tenant_id: tenant });
    const r = await this.#query<{ seq: string; event: string }>({
      text: `SELECT seq, event FROM (SELECT seq, event FROM ${this.#schema}.events WHERE stream = $1
               ORDER BY seq DESC LIMIT $2) x ORDER BY seq`,
      values: [stream, limit],
      types: raw,
    });
    return r.rows.map((x) => ({ ...(JSON.parse(x.event) as AuditEvent), seq: Number(x.seq) }));
  }

  /** Number of stored events in one tenant's stream. */
  async count(tenant: string | null): Promise<number> {
    const r = await this.#query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#schema}.events WHERE stream = $1`, [
      streamName({ tenant_id: tenant }),
    ]);
    return Number(r.rows[0]?.n ?? 0);
  }

  /** Keyset pages, with the next page requested while the current one is being hashed. */
  async *#eventPages(stream: string): AsyncGenerator<ChainRow[]> {
    const fetch = async (after: number): Promise<ChainRow[]> => {
      const r = await asRole(this.#pool, this.#role, (q) =>
        q.query<string[]>({
          text: `SELECT seq, encode(prev_hash, 'hex'), encode(hash, 'hex'), event FROM ${this.#schema}.events
                 WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
          values: [stream, after, this.#pageSize],
          rowMode: 'array',
          types: raw,
        }),
      );
      const rows: ChainRow[] = new Array(r.rows.length);
      for (let i = 0; i < r.rows.length; i++) {
        const x = r.rows[i] as string[];
        rows[i] = { seq: Number(x[0]), prevHash: x[1] as string, hash: x[2] as string, event: x[3] as string };
      }
      return rows;
    };
    let next = fetch(0);
    next.catch(() => undefined); // awaited below; this only keeps an abandoned prefetch quiet
    for (;;) {
      const rows = await next;
      const full = rows.length === this.#pageSize;
      // Keyset on the last seq read: a stored seq is unique per stream (primary key).
      if (full) {
        next = fetch((rows[rows.length - 1] as ChainRow).seq);
        next.catch(() => undefined);
      }
      if (rows.length > 0) yield rows;
      if (!full) return;
    }
  }
}

export interface PurgeOptions {
  /** A pool connected as the role that owns the audit tables (the only role that may delete). */
  pool: Pool;
  /** Schema of the audit tables. Default `tenantscope_audit`. */
  schema?: string;
  /** The tenant whose stream to purge (`null`: the unauthenticated stream). */
  tenant: string | null;
  /** Keep events younger than this many days. Default 400; values under 365 are refused. */
  olderThanDays?: number;
  /** The owning role, when the pool logs in as another role (behind a pooler). Default: none. */
  role?: string;
  /** "Now", for tests. Default the current time. */
  now?: Date;
  /** Who ran the purge, recorded as the purge event's subject. Default `tenantscope-retention`. */
  actor?: string;
}

export interface PurgeResult {
  stream: string;
  /** Events removed. */
  purged: number;
  /** The chain now starts after this sequence number (null when nothing was purged). */
  purgedThrough: number | null;
  /** Sequence number of the `audit_purge` event recording the purge (null when nothing was purged). */
  purgeEventSeq: number | null;
}

/**
 * Retention for one stream: removes the oldest events (a prefix of the chain) whose timestamp
 * is older than the cutoff, records a `purge` checkpoint (seq and hash of the last removed event)
 * so the remainder still verifies, and appends an `audit_purge` event to the same stream. All in
 * one transaction, under the stream's append lock.
 */
export async function purgePostgresAudit(options: PurgeOptions): Promise<PurgeResult> {
  const days = options.olderThanDays ?? DEFAULT_RETENTION_DAYS;
  if (!Number.isFinite(days) || days < MIN_RETENTION_DAYS) {
    throw new TenantScopeError('INVALID_ARGUMENT', `retention must be at least ${MIN_RETENTION_DAYS} days`);
  }
  const s = ident(options.schema ?? DEFAULT_AUDIT_SCHEMA, 'schema');
  const stream = streamName({ tenant_id: options.tenant });
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  const role = checkedRole(options.role);
  const client = await options.pool.connect();
  try {
    await client.query(role === undefined ? 'BEGIN' : `BEGIN; ${roleSql(role)}`);
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [STREAM_LOCK_CLASS, stream]);
    // The purge removes a prefix: everything before the first event at or after the cutoff.
    const r = await client.query<{ through: string | null }>(
      `SELECT coalesce(
         (SELECT min(seq) - 1 FROM ${s}.events WHERE stream = $1 AND ts >= $2),
         (SELECT max(seq) FROM ${s}.events WHERE stream = $1)) AS through`,
      [stream, cutoff],
    );
    const through = r.rows[0]?.through == null ? null : Number(r.rows[0].through);
    const first = await client.query<{ seq: string | null }>(
      `SELECT min(seq) AS seq FROM ${s}.events WHERE stream = $1`,
      [stream],
    );
    const firstSeq = first.rows[0]?.seq == null ? null : Number(first.rows[0].seq);
    if (through === null || firstSeq === null || through < firstSeq) {
      await client.query('COMMIT');
      return { stream, purged: 0, purgedThrough: null, purgeEventSeq: null };
    }
    await client.query(
      `INSERT INTO ${s}.anchors (stream, seq, hash, kind)
         SELECT stream, seq, hash, 'purge' FROM ${s}.events WHERE stream = $1 AND seq = $2`,
      [stream, through],
    );
    await client.query(`SELECT set_config('tenantscope_audit.purge', 'on', true)`);
    const del = await client.query(`DELETE FROM ${s}.events WHERE stream = $1 AND seq <= $2`, [stream, through]);
    await client.query(`SELECT set_config('tenantscope_audit.purge', 'off', true)`);
    const purged = del.rowCount ?? 0;
    const event = purgeEvent({
      tenant: options.tenant,
      actor: options.actor,
      now,
      details: { purged, purged_through_seq: through, retention_days: days, cutoff: cutoff.toISOString() },
    });
    const ins = await client.query<{ seq: string }>(`INSERT INTO ${s}.events (event) VALUES ($1) RETURNING seq`, [
      canonicalJson(event),
    ]);
    await client.query('COMMIT');
    return { stream, purged, purgedThrough: through, purgeEventSeq: Number(ins.rows[0]?.seq) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new TenantScopeError('AUDIT_PURGE_FAILED', 'audit retention purge failed', { cause: err, status: 500 });
  } finally {
    client.release();
  }
}
