import { type AuditEvent, type AuditSink, TenantScopeError } from '@tenantscope/core';
import type { Pool } from 'pg';
import { type PrivacyOptions, prepareEvent } from '../event.ts';
import { DEFAULT_AUDIT_SCHEMA, ident } from './schema.ts';
import { asRole, checkedRole } from './session.ts';

export interface PostgresAuditSinkOptions {
  /**
   * A pool connected as the writer role (see `migrateAuditSchema`). The sink never closes it unless
   * `ownsPool`. Give the pool an `'error'` listener: pg emits idle-connection drops there.
   */
  pool: Pool;
  /** Schema of the audit tables. Default `tenantscope_audit`. */
  schema?: string;
  /**
   * The writer role, when the pool logs in as another role (behind a pooler, which refuses the
   * startup option `role`): each batch then runs in its own transaction that starts with
   * `SET LOCAL ROLE <role>; SET LOCAL synchronous_commit = on` (three round trips instead of one).
   * Default: none, the pool's sessions are the writer already.
   */
  role?: string;
  /**
   * `durable` (default): `write` resolves only after the event's batch has committed, so a tool
   * call returns only once its event is in the table, and a failed write fails the call.
   * `async`: `write` resolves as soon as the event is queued; a batch that then fails is reported
   * to `onAsyncError` and its events are LOST, and a crash loses whatever was queued. The call
   * also no longer fails closed when the database is down (until the queue fills). Use it only
   * when losing the last moments of audit on a crash is acceptable.
   */
  mode?: 'durable' | 'async';
  /** Most events in one INSERT (one group commit). Default 1000. */
  maxBatch?: number;
  /**
   * Batches in flight at once, each on its own pooled connection. Streams are split into this many
   * lanes by a hash of the tenant id; a lane has one batch in flight at a time, so concurrent batches
   * never wait on each other's stream locks and each stream keeps its order. Default 2.
   */
  maxInFlight?: number;
  /**
   * Most events queued and not yet committed. Past it, `write` waits for its own event to
   * commit (back-pressure, also in async mode). Default 50,000.
   */
  maxQueue?: number;
  /** Identity minimisation applied before events are chained. */
  privacy?: PrivacyOptions;
  /** Called with the error and the number of events lost when an async-mode batch fails. */
  onAsyncError?: (err: TenantScopeError, lost: number) => void;
  /** Close the pool in `close()`. Default false. */
  ownsPool?: boolean;
}

interface Pending {
  canonical: string;
  stream: string;
  ts: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Appends events to the hash-chained audit table with group commit: concurrent writes are
 * gathered into one multi-row INSERT (one round trip, one commit). The database assigns
 * sequence numbers and hashes (see `auditSchemaSql`), so several processes may write at once.
 */
export class PostgresAuditSink implements AuditSink {
  readonly #pool: Pool;
  readonly #sql: string;
  readonly #mode: 'durable' | 'async';
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #maxQueue: number;
  readonly #privacy: PrivacyOptions;
  readonly #onAsyncError: PostgresAuditSinkOptions['onAsyncError'];
  readonly #ownsPool: boolean;
  readonly #role: string | undefined;
  readonly #lanes: { queue: Pending[]; busy: boolean }[];
  #queued = 0;
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(options: PostgresAuditSinkOptions) {
    if (!options?.pool) throw new TenantScopeError('INVALID_CONFIG', 'PostgresAuditSink needs a pool');
    const s = ident(options.schema ?? DEFAULT_AUDIT_SCHEMA, 'schema');
    this.#pool = options.pool;
    this.#role = checkedRole(options.role);
    // One call per batch: append() chains the batch under each stream's lock (see auditSchemaSql).
    this.#sql = `SELECT ${s}.append($1::text[], $2::timestamptz[], $3::text[])`;
    this.#mode = options.mode ?? 'durable';
    this.#maxBatch = positive(options.maxBatch ?? 1000, 'maxBatch');
    this.#maxInFlight = positive(options.maxInFlight ?? 2, 'maxInFlight');
    this.#lanes = Array.from({ length: this.#maxInFlight }, () => ({ queue: [], busy: false }));
    this.#maxQueue = positive(options.maxQueue ?? 50_000, 'maxQueue');
    this.#privacy = options.privacy ?? {};
    this.#onAsyncError = options.onAsyncError;
    this.#ownsPool = options.ownsPool ?? false;
  }

  /** Events queued and not yet sent. */
  get pending(): number {
    return this.#queued;
  }

  write(event: AuditEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new TenantScopeError('AUDIT_WRITE_FAILED', 'audit sink is closed'));
    let prepared: ReturnType<typeof prepareEvent>;
    try {
      prepared = prepareEvent(event, this.#privacy);
    } catch (err) {
      return Promise.reject(err);
    }
    const durable = this.#mode === 'durable' || this.#queued >= this.#maxQueue;
    const lane = this.#lanes[laneOf(prepared.stream, this.#lanes.length)] as Sink['lane'];
    const p = new Promise<void>((resolve, reject) => {
      lane.queue.push({
        canonical: prepared.canonical,
        stream: prepared.stream,
        ts: prepared.event.timestamp,
        resolve,
        reject,
      });
    });
    this.#queued++;
    this.#pump(lane);
    if (durable) return p;
    p.catch(() => undefined); // reported through onAsyncError
    return Promise.resolve();
  }

  /** Resolves when everything queued so far has been committed or has failed. */
  flush(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Flushes, then stops accepting events (and closes the pool if `ownsPool`). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    if (this.#ownsPool) await this.#pool.end();
  }

  #isIdle(): boolean {
    return this.#queued === 0 && this.#lanes.every((l) => !l.busy);
  }

  #pump(lane: Sink['lane']): void {
    if (lane.busy || lane.queue.length === 0) return;
    const batch = lane.queue.splice(0, this.#maxBatch);
    this.#queued -= batch.length;
    lane.busy = true;
    void this.#send(batch).finally(() => {
      lane.busy = false;
      this.#pump(lane);
      if (this.#isIdle()) for (const r of this.#idle.splice(0)) r();
    });
  }

  async #send(batch: Pending[]): Promise<void> {
    try {
      // Stable sort by stream: append() takes the stream locks in this order.
      const rows =
        batch.length > 1 ? [...batch].sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0)) : batch;
      const params = [rows.map((b) => b.stream), rows.map((b) => b.ts), rows.map((b) => b.canonical)];
      await asRole(this.#pool, this.#role, (q) => q.query(this.#sql, params));
      for (const b of batch) b.resolve();
    } catch (cause) {
      const err = new TenantScopeError('AUDIT_WRITE_FAILED', 'audit events could not be written', { cause });
      for (const b of batch) b.reject(err);
      if (this.#mode === 'async') this.#onAsyncError?.(err, batch.length);
    }
  }
}

type Sink = { lane: { queue: Pending[]; busy: boolean } };

/** FNV-1a of the stream name, modulo the lane count. */
function laneOf(stream: string, lanes: number): number {
  if (lanes === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) {
    h ^= stream.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % lanes;
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n <= 0)
    throw new TenantScopeError('INVALID_CONFIG', `${name} must be a positive integer`);
  return n;
}
