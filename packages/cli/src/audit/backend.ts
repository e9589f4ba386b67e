/**
 * The audit log the CLI writes to and reads from, either backend of `@tenantscope/audit`: the
 * hash-chained JSONL directory or the Postgres audit tables. Both store the same chain (each hash
 * is sha256(prev_hash || canonical event)), so an export of either is the same JSONL line format
 * and `verifyJsonl` checks it.
 */
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type AnchorStore,
  ChainedJsonlAuditSink,
  formatLine,
  JsonlAnchorStore,
  jsonlStreams,
  parseLine,
  type VerifyReport,
  verifyJsonl,
} from '@tenantscope/audit';
import { PostgresAuditSink, PostgresAuditStore } from '@tenantscope/audit/postgres';
import { type AuditEvent, streamName } from '@tenantscope/core';
import { pg, quoteIdent } from '@tenantscope/postgres';
import type { DsarConfig } from '../dsar/config.ts';
import { cliError } from '../errors.ts';

/** One piece of a stream's stored lines, and the day file (`YYYY-MM-DD.jsonl`) it belongs to. */
export interface AuditChunk {
  file: string;
  data: Buffer;
}

export interface AuditBackend {
  readonly kind: 'jsonl' | 'postgres';
  /** Appends one event to its tenant's chain (durably: resolves once stored). */
  write(event: AuditEvent): Promise<void>;
  /** True when the tenant's stream holds an event of this type with this args_hash. */
  hasEvent(tenant: string, type: string, argsHash: string): Promise<boolean>;
  /** Recomputes the chain of one tenant's stream, or of every stream. */
  verify(tenant?: string): Promise<VerifyReport>;
  /** Every stream (tenant ids, and `_unauthenticated`). */
  streams(): Promise<string[]>;
  /** A stream's stored lines, oldest first, in the JSONL line format, grouped into day files. */
  chunks(stream: string): AsyncIterable<AuditChunk>;
  close(): Promise<void>;
}

const noAnchors: AnchorStore = { record: async () => undefined, list: async () => [] };
const DAY_FILE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;

class JsonlBackend implements AuditBackend {
  readonly kind = 'jsonl';
  readonly #dir: string;
  readonly #anchors: AnchorStore;
  #sink: ChainedJsonlAuditSink | undefined;
  constructor(dir: string, anchorsDir: string | undefined) {
    this.#dir = dir;
    this.#anchors = anchorsDir ? new JsonlAnchorStore({ dir: anchorsDir }) : noAnchors;
  }
  write(event: AuditEvent): Promise<void> {
    this.#sink ??= new ChainedJsonlAuditSink({ dir: this.#dir });
    return this.#sink.write(event);
  }
  async #files(stream: string): Promise<string[]> {
    try {
      return (await readdir(join(this.#dir, stream))).filter((f) => DAY_FILE.test(f)).sort();
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
  }
  async hasEvent(tenant: string, type: string, hash: string): Promise<boolean> {
    const stream = streamName({ tenant_id: tenant });
    for (const f of await this.#files(stream)) {
      // Line by line: a day file can be large.
      const input = createReadStream(join(this.#dir, stream, f));
      for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
        const row = parseLine(line);
        if (!row) continue;
        const e = JSON.parse(row.event) as { event_type?: string; args_hash?: string };
        if (e.event_type === type && e.args_hash === hash) return true;
      }
    }
    return false;
  }
  verify(tenant?: string): Promise<VerifyReport> {
    return verifyJsonl({ dir: this.#dir, anchors: this.#anchors, ...(tenant === undefined ? {} : { tenant }) });
  }
  streams(): Promise<string[]> {
    return jsonlStreams(this.#dir);
  }
  async *chunks(stream: string): AsyncIterable<AuditChunk> {
    // As stored, byte for byte: an edited line stays edited in the export, and fails its check.
    for (const file of await this.#files(stream)) {
      for await (const data of createReadStream(join(this.#dir, stream, file)) as AsyncIterable<Buffer>) {
        yield { file, data };
      }
    }
  }
  async close(): Promise<void> {
    await this.#sink?.close();
  }
}

type PgAudit = Extract<DsarConfig['audit'], { postgres: unknown }>['postgres'];
const PAGE = 1000;

class PostgresBackend implements AuditBackend {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #auditor: string | undefined;
  readonly #store: PostgresAuditStore;
  readonly #sink: PostgresAuditSink;
  constructor(c: PgAudit, url: string) {
    this.#pool = new pg.Pool({ connectionString: url, max: 2 });
    // An idle connection dropped by the server is not an audit failure: the next checkout reconnects.
    this.#pool.on('error', () => undefined);
    this.#schema = quoteIdent(c.schema, 'schema');
    this.#auditor = c.auditorRole;
    this.#store = new PostgresAuditStore({
      pool: this.#pool,
      schema: c.schema,
      ...(c.auditorRole ? { role: c.auditorRole } : {}),
    });
    this.#sink = new PostgresAuditSink({
      pool: this.#pool,
      schema: c.schema,
      ...(c.writerRole ? { role: c.writerRole } : {}),
    });
  }
  write(event: AuditEvent): Promise<void> {
    return this.#sink.write(event);
  }
  /** One read as the auditor: SET LOCAL ROLE inside its own transaction when a role is configured. */
  async #read<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    if (!this.#auditor) return (await this.#pool.query<R>(text, values)).rows;
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN READ ONLY');
      await c.query(`SET LOCAL ROLE ${quoteIdent(this.#auditor, 'role')}`);
      const r = await c.query<R>(text, values);
      await c.query('COMMIT');
      return r.rows;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }
  async hasEvent(tenant: string, type: string, hash: string): Promise<boolean> {
    const rows = await this.#read(
      `SELECT 1 FROM ${this.#schema}.events WHERE stream = $1
         AND event::jsonb->>'event_type' = $2 AND event::jsonb->>'args_hash' = $3 LIMIT 1`,
      [streamName({ tenant_id: tenant }), type, hash],
    );
    return rows.length > 0;
  }
  verify(tenant?: string): Promise<VerifyReport> {
    return this.#store.verify(tenant);
  }
  streams(): Promise<string[]> {
    return this.#store.streams();
  }
  async *chunks(stream: string): AsyncIterable<AuditChunk> {
    // Keyset pages of the stored chain. The day file follows the event time but never goes back,
    // so the files, read in name order, are in seq order.
    let after = 0;
    let day = '0000-00-00';
    for (;;) {
      const rows = await this.#read<{ seq: string; prev: string; hash: string; event: string; day: string }>(
        `SELECT seq::text, encode(prev_hash, 'hex') AS prev, encode(hash, 'hex') AS hash, event,
                to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
           FROM ${this.#schema}.events WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT ${PAGE}`,
        [stream, after],
      );
      for (const r of rows) {
        if (r.day > day) day = r.day;
        yield { file: `${day}.jsonl`, data: Buffer.from(formatLine(Number(r.seq), r.prev, r.hash, r.event)) };
      }
      if (rows.length < PAGE) return;
      after = Number((rows[rows.length - 1] as { seq: string }).seq);
    }
  }
  async close(): Promise<void> {
    await this.#sink.close().catch(() => undefined);
    await this.#pool.end();
  }
}

/** The configured audit backend. Paths in a JSONL config are already resolved by the caller. */
export function openAudit(cfg: DsarConfig): AuditBackend {
  const a = cfg.audit;
  if ('jsonlDir' in a) return new JsonlBackend(a.jsonlDir, a.anchorsDir);
  const url = a.postgres.url ?? process.env[a.postgres.urlEnv as string];
  if (!url) throw cliError('CLI_CONFIG_INVALID', `dsar.audit.postgres.urlEnv: ${a.postgres.urlEnv} is not set`);
  return new PostgresBackend(a.postgres, url);
}
