import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import canonicalize from 'canonicalize';
import { TenantScopeError } from './errors.ts';
import { DEFAULT_TENANT_ID_PATTERN } from './tenant.ts';

export type AuditEventType =
  | 'tool_call'
  | 'auth_failure'
  | 'tenant_override'
  | 'session_denied'
  | 'secret_redacted'
  | (string & {});

export type AuditStatus = 'ok' | 'denied' | 'error';

/** One audit record. Field names are a stable schema. Argument values never appear, only their hash. */
export interface AuditEvent {
  /** ISO-8601 UTC time the decision was made. */
  timestamp: string;
  /** The verified tenant, or null when no tenant could be established (an unauthenticated stream). */
  tenant_id: string | null;
  /** MCP session id, when there was one. */
  session_id: string | null;
  /** Token subject, when known. */
  subject: string | null;
  event_type: AuditEventType;
  /** The tool asked for, when the event concerns a tool call. */
  tool_name: string | null;
  /** `sha256:` + hex SHA-256 of the canonical JSON (RFC 8785) of the arguments. */
  args_hash: string | null;
  result_status: AuditStatus;
  /** Stable error code explaining a denial or error (e.g. TOOL_NOT_FOUND), or null. */
  reason: string | null;
  latency_ms: number;
  /** Client address as the server saw it. */
  ip_address: string | null;
  /** JSON-RPC request id, when there was one. */
  request_id?: string | null;
  /** Numbers and short strings about the event itself (e.g. a summary's counts); never argument values. */
  details?: Record<string, string | number | boolean | null>;
}

/** Where audit events go. `write` resolves only once the event is durable; a rejection fails the call. */
export interface AuditSink {
  write(event: AuditEvent): Promise<void>;
  close?(): Promise<void>;
}

/** Canonical JSON (RFC 8785, via the `canonicalize` package). */
export function canonicalJson(value: unknown): string {
  const s = canonicalize(value === undefined ? {} : value);
  if (s === undefined) throw new TenantScopeError('INVALID_ARGUMENT', 'value cannot be canonicalised');
  return s;
}

/** `sha256:<hex>` of the canonical JSON of `args`. */
export function argsHash(args: unknown): string {
  return `sha256:${createHash('sha256')
    .update(canonicalJson(args ?? {}))
    .digest('hex')}`;
}

/** Name of the stream an event belongs to: the tenant id, or `_unauthenticated`. */
export function streamName(event: Pick<AuditEvent, 'tenant_id'>): string {
  if (event.tenant_id === null) return '_unauthenticated';
  if (!DEFAULT_TENANT_ID_PATTERN.test(event.tenant_id)) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'audit event has an invalid tenant_id');
  }
  return event.tenant_id;
}

export interface JsonlAuditSinkOptions {
  /** Directory for the streams: one `<tenant>.jsonl` file per tenant, `_unauthenticated.jsonl` for the rest. */
  dir: string;
  /** fsync each batch before the writes resolve. Default true. */
  fsync?: boolean;
  /** Most open file handles kept; least recently used are closed. Default 256. */
  maxOpenFiles?: number;
}

interface Stream {
  handle: Promise<FileHandle>;
  queue: { line: string; resolve: () => void; reject: (e: unknown) => void }[];
  flushing: boolean;
}

/**
 * Append-only JSONL files, one stream per tenant. Concurrent writes to one stream are batched:
 * one append (and one fsync) per batch, and each `write` resolves when its batch is on disk.
 */
export class JsonlAuditSink implements AuditSink {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #max: number;
  readonly #streams = new Map<string, Stream>();
  #ready: Promise<unknown> | undefined;

  constructor(options: JsonlAuditSinkOptions) {
    if (!options?.dir) throw new TenantScopeError('INVALID_CONFIG', 'JsonlAuditSink needs a dir');
    this.#dir = options.dir;
    this.#fsync = options.fsync ?? true;
    this.#max = options.maxOpenFiles ?? 256;
  }

  /** Path of a stream's file. */
  pathFor(tenantId: string | null): string {
    return join(this.#dir, `${streamName({ tenant_id: tenantId })}.jsonl`);
  }

  async write(event: AuditEvent): Promise<void> {
    const name = streamName(event);
    const line = `${JSON.stringify(event)}\n`;
    return new Promise<void>((resolve, reject) => {
      const stream = this.#stream(name);
      stream.queue.push({ line, resolve, reject });
      if (!stream.flushing) void this.#flush(name, stream);
    });
  }

  async close(): Promise<void> {
    const handles = [...this.#streams.values()].map((s) => s.handle);
    this.#streams.clear();
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
  }

  #stream(name: string): Stream {
    let s = this.#streams.get(name);
    if (s) {
      this.#streams.delete(name);
      this.#streams.set(name, s); // LRU order
      return s;
    }
    this.#ready ??= mkdir(this.#dir, { recursive: true });
    const ready = this.#ready;
    s = { handle: ready.then(() => open(join(this.#dir, `${name}.jsonl`), 'a', 0o600)), queue: [], flushing: false };
    s.handle.catch(() => undefined);
    this.#streams.set(name, s);
    this.#evict(name);
    return s;
  }

  #evict(keep: string): void {
    for (const [name, s] of this.#streams) {
      if (this.#streams.size <= this.#max) return;
      if (name === keep || s.flushing || s.queue.length > 0) continue;
      this.#streams.delete(name);
      void s.handle.then((h) => h.close()).catch(() => undefined);
    }
  }

  async #flush(name: string, stream: Stream): Promise<void> {
    stream.flushing = true;
    try {
      while (stream.queue.length > 0) {
        const batch = stream.queue.splice(0, stream.queue.length);
        try {
          const h = await stream.handle;
          await h.appendFile(batch.map((b) => b.line).join(''), 'utf8');
          if (this.#fsync) await h.datasync();
          for (const b of batch) b.resolve();
        } catch (cause) {
          const err = new TenantScopeError('AUDIT_WRITE_FAILED', 'audit event could not be written', { cause });
          for (const b of batch) b.reject(err);
          // A broken handle is dropped so the next write reopens the file.
          if (this.#streams.get(name) === stream) this.#streams.delete(name);
        }
      }
    } finally {
      stream.flushing = false;
    }
  }
}

/** An in-memory sink for tests and tools. Bounded: keeps the last `max` events. */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  readonly max: number;
  constructor(max = 100_000) {
    this.max = max;
  }
  async write(event: AuditEvent): Promise<void> {
    this.events.push(structuredClone(event));
    if (this.events.length > this.max) this.events.splice(0, this.events.length - this.max);
  }
}

/** Sends each event to every sink; resolves when all have it, rejects if any fails. */
export function teeAuditSink(...sinks: AuditSink[]): AuditSink {
  return {
    async write(event) {
      await Promise.all(sinks.map((s) => s.write(event)));
    },
    async close() {
      await Promise.all(sinks.map((s) => s.close?.()));
    },
  };
}
