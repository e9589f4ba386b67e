import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { type AuditEvent, type AuditSink, BoundedLru, streamName, TenantScopeError } from '@tenantscope/core';
import {
  type Anchor,
  type ChainRow,
  GENESIS_HASH,
  linkHash,
  type StreamReport,
  type VerifyReport,
  verifyStream,
} from './chain.ts';
import {
  DEFAULT_RETENTION_DAYS,
  MIN_RETENTION_DAYS,
  type PrivacyOptions,
  prepareEvent,
  purgeEvent,
  type StoredEvent,
} from './event.ts';

const LINE = /^\{"seq":(\d+),"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})","event":(\{.*\})\}$/;
const DAY_FILE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;
const STREAM_DIR = /^(?:_unauthenticated|[a-z0-9][a-z0-9_-]{0,62})$/;

/** One stored line: `{"seq":…,"prev_hash":…,"hash":…,"event":<canonical event>}`. */
export function formatLine(seq: number, prevHash: string, hash: string, canonicalEvent: string): string {
  return `{"seq":${seq},"prev_hash":"${prevHash}","hash":"${hash}","event":${canonicalEvent}}\n`;
}

/** Parses a stored line; null when it is not a well-formed record. */
export function parseLine(line: string): ChainRow | null {
  const m = LINE.exec(line);
  if (!m) return null;
  return { seq: Number(m[1]), prevHash: m[2] as string, hash: m[3] as string, event: m[4] as string };
}

/** Where chain heads are checkpointed, out of the writer's reach. */
export interface AnchorStore {
  record(anchors: readonly Anchor[]): Promise<void>;
  list(stream: string): Promise<Anchor[]>;
}

/**
 * Anchors in an append-only JSONL file. Give its directory to the auditor only (another OS user,
 * or a mount the writer does not have), or ship the file off the host: a writer that can rewrite
 * the anchors can hide a truncated tail.
 */
export class JsonlAnchorStore implements AnchorStore {
  readonly #file: string;
  constructor(options: {
    /** Directory of `anchors.jsonl`; must not be writable by the audit writer. */
    dir: string;
  }) {
    if (!options?.dir) throw new TenantScopeError('INVALID_CONFIG', 'JsonlAnchorStore needs a dir');
    this.#file = join(options.dir, 'anchors.jsonl');
  }
  async record(anchors: readonly Anchor[]): Promise<void> {
    if (anchors.length === 0) return;
    await mkdir(join(this.#file, '..'), { recursive: true });
    const now = new Date().toISOString();
    const text = anchors
      .map((a) =>
        JSON.stringify({ stream: a.stream, seq: a.seq, hash: a.hash, kind: a.kind, recorded_at: a.recordedAt ?? now }),
      )
      .join('\n');
    const h = await open(this.#file, 'a', 0o600);
    try {
      await h.appendFile(`${text}\n`);
      await h.datasync();
    } finally {
      await h.close();
    }
  }
  async list(stream: string): Promise<Anchor[]> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: Anchor[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      const a = JSON.parse(line) as {
        stream: string;
        seq: number;
        hash: string;
        kind: 'head' | 'purge';
        recorded_at: string;
      };
      if (a.stream === stream) out.push({ stream, seq: a.seq, hash: a.hash, kind: a.kind, recordedAt: a.recorded_at });
    }
    return out;
  }
}

export interface ChainedJsonlAuditSinkOptions {
  /** Root directory: one sub-directory per stream, one `YYYY-MM-DD.jsonl` file per UTC day. */
  dir: string;
  /** fsync each batch before its writes resolve. Default true. */
  fsync?: boolean;
  /** Most lines in one append. Default 1000. */
  maxBatch?: number;
  /** Most streams kept open; the least recently used are closed (and reloaded from disk when needed). Default 256. */
  maxOpenStreams?: number;
  /** Identity minimisation applied before events are chained. */
  privacy?: PrivacyOptions;
  /** Clock for the day a line is filed under. Default `new Date()`. */
  now?: () => Date;
}

interface StreamState {
  name: string;
  seq: number;
  hash: string;
  day: string | null;
  handle: FileHandle | null;
  queue: { canonical: string; resolve: () => void; reject: (e: unknown) => void }[];
  flushing: boolean;
}

/**
 * Hash-chained JSONL audit files, one per tenant per day. Concurrent writes to a stream are
 * batched into one append and one fsync; each `write` resolves once its line is on disk. The
 * chain continues across day files. On start a stream's head is read back from its newest file,
 * and a torn last line (a crash mid-append: its write never resolved) is cut off first.
 * One writer process per directory.
 */
export class ChainedJsonlAuditSink implements AuditSink {
  readonly dir: string;
  readonly #fsync: boolean;
  readonly #maxBatch: number;
  readonly #privacy: PrivacyOptions;
  readonly #now: () => Date;
  readonly #streams: BoundedLru<string, Promise<StreamState>>;
  #closed = false;

  constructor(options: ChainedJsonlAuditSinkOptions) {
    if (!options?.dir) throw new TenantScopeError('INVALID_CONFIG', 'ChainedJsonlAuditSink needs a dir');
    this.dir = options.dir;
    this.#fsync = options.fsync ?? true;
    this.#maxBatch = options.maxBatch ?? 1000;
    this.#privacy = options.privacy ?? {};
    this.#now = options.now ?? (() => new Date());
    this.#streams = new BoundedLru(options.maxOpenStreams ?? 256, (_k, s) => {
      void s.then(async (st) => {
        // Evicted while busy: put it back rather than lose its queue.
        if (st.flushing || st.queue.length > 0) {
          this.#streams.set(st.name, Promise.resolve(st));
          return;
        }
        await st.handle?.close().catch(() => undefined);
        st.handle = null;
      });
    });
  }

  /** Directory of one tenant's files (`null`: the unauthenticated stream). */
  dirFor(tenant: string | null): string {
    return join(this.dir, streamName({ tenant_id: tenant }));
  }

  write(event: AuditEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new TenantScopeError('AUDIT_WRITE_FAILED', 'audit sink is closed'));
    let prepared: ReturnType<typeof prepareEvent>;
    try {
      prepared = prepareEvent(event, this.#privacy);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.#state(prepared.stream).then(
        (st) => {
          st.queue.push({ canonical: prepared.canonical, resolve, reject });
          if (!st.flushing) void this.#flush(st);
        },
        (cause) => reject(new TenantScopeError('AUDIT_WRITE_FAILED', 'audit stream could not be opened', { cause })),
      );
    });
  }

  /** Events of one tenant's stream, oldest first, with their seq (reads every file of the stream). */
  async events(tenant: string | null): Promise<(StoredEvent & { seq: number })[]> {
    const out: (StoredEvent & { seq: number })[] = [];
    for await (const page of readStreamRows(this.dir, streamName({ tenant_id: tenant }))) {
      for (const r of page) if (!r.malformed) out.push({ ...(JSON.parse(r.event) as StoredEvent), seq: r.seq });
    }
    return out;
  }

  /** The current head of a stream (seq 0 and the genesis hash when empty). */
  async head(stream: string): Promise<{ seq: number; hash: string }> {
    const st = await this.#state(stream);
    return { seq: st.seq, hash: st.hash };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const states = await Promise.allSettled([...this.#streams.values()]);
    for (const s of states) {
      if (s.status !== 'fulfilled') continue;
      while (s.value.flushing || s.value.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
      await s.value.handle?.close().catch(() => undefined);
      s.value.handle = null;
    }
  }

  #state(name: string): Promise<StreamState> {
    let p = this.#streams.get(name);
    if (!p) {
      p = loadHead(this.dir, name).then((h) => ({
        name,
        seq: h.seq,
        hash: h.hash,
        day: null,
        handle: null,
        queue: [],
        flushing: false,
      }));
      p.catch(() => this.#streams.delete(name));
      this.#streams.set(name, p);
    }
    return p;
  }

  async #flush(st: StreamState): Promise<void> {
    st.flushing = true;
    try {
      while (st.queue.length > 0) {
        const batch = st.queue.splice(0, this.#maxBatch);
        const startSeq = st.seq;
        const startHash = st.hash;
        try {
          const day = this.#now().toISOString().slice(0, 10);
          if (st.day !== day || st.handle === null) {
            await st.handle?.close().catch(() => undefined);
            st.handle = null;
            const dir = join(this.dir, st.name);
            await mkdir(dir, { recursive: true, mode: 0o700 });
            st.handle = await open(join(dir, `${day}.jsonl`), 'a', 0o600);
            st.day = day;
            if (this.#fsync) await fsyncDir(dir);
          }
          let seq = st.seq;
          let hash = st.hash;
          let text = '';
          for (const b of batch) {
            const h = linkHash(hash, b.canonical);
            seq++;
            text += formatLine(seq, hash, h, b.canonical);
            hash = h;
          }
          await st.handle.appendFile(text, 'utf8');
          if (this.#fsync) await st.handle.datasync();
          st.seq = seq;
          st.hash = hash;
          for (const b of batch) b.resolve();
        } catch (cause) {
          st.seq = startSeq;
          st.hash = startHash;
          const err = new TenantScopeError('AUDIT_WRITE_FAILED', 'audit events could not be written', { cause });
          for (const b of batch) b.reject(err);
          // A partial append may be on disk: drop the state so the next write re-reads the head
          // (and cuts a torn line).
          await st.handle?.close().catch(() => undefined);
          st.handle = null;
          this.#streams.delete(st.name);
        }
      }
    } finally {
      st.flushing = false;
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the file's own fsync still holds
  } finally {
    await h.close();
  }
}

async function dayFiles(root: string, stream: string): Promise<string[]> {
  try {
    return (await readdir(join(root, stream))).filter((f) => DAY_FILE.test(f)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Reads a stream's head from its newest non-empty file, cutting a torn last line first. */
async function loadHead(root: string, stream: string): Promise<{ seq: number; hash: string }> {
  const files = await dayFiles(root, stream);
  for (let i = files.length - 1; i >= 0; i--) {
    const path = join(root, stream, files[i] as string);
    const size = (await stat(path)).size;
    if (size === 0) continue;
    const h = await open(path, 'r+');
    try {
      // Read back far enough to hold the last complete line.
      let chunk = 64 * 1024;
      for (;;) {
        const start = Math.max(0, size - chunk);
        const buf = Buffer.alloc(size - start);
        await h.read(buf, 0, buf.length, start);
        const end = buf.lastIndexOf(0x0a);
        if (end < 0 && start > 0) {
          chunk *= 4;
          continue;
        }
        if (end < 0) {
          await h.truncate(0); // only a torn line: nothing in this file was ever acknowledged
          break;
        }
        if (end !== buf.length - 1) await h.truncate(start + end + 1); // cut the torn last line
        const before = end === 0 ? -1 : buf.lastIndexOf(0x0a, end - 1);
        if (before < 0 && start > 0) {
          chunk *= 4;
          continue;
        }
        const row = parseLine(buf.subarray(before + 1, end).toString('utf8'));
        if (!row) {
          throw new TenantScopeError('AUDIT_CHAIN_BROKEN', 'the last line of an audit file is not a valid record', {
            status: 500,
          });
        }
        return { seq: row.seq, hash: row.hash };
      }
    } finally {
      await h.close();
    }
  }
  return { seq: 0, hash: GENESIS_HASH };
}

type FileRow = ChainRow & { malformed?: boolean };

/** Rows of a stream across its day files, in file order, in pages. A torn final line is skipped. */
async function* readStreamRows(root: string, stream: string, pageSize = 10_000): AsyncGenerator<FileRow[]> {
  const files = await dayFiles(root, stream);
  let page: FileRow[] = [];
  let lastSeq = 0;
  for (const [fi, f] of files.entries()) {
    const path = join(root, stream, f);
    const lastFile = fi === files.length - 1;
    const endsWithNewline = await endsWithLf(path);
    const rl = createInterface({
      input: createReadStream(path, { encoding: 'utf8' }),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    const lines: string[] = [];
    for await (const line of rl) lines.push(line);
    for (const [li, line] of lines.entries()) {
      if (lastFile && li === lines.length - 1 && !endsWithNewline) break; // torn tail, never acknowledged
      const row = parseLine(line);
      if (row) {
        lastSeq = row.seq;
        page.push(row);
      } else {
        page.push({ seq: lastSeq + 1, prevHash: '', hash: '', event: line, malformed: true });
        lastSeq++;
      }
      if (page.length >= pageSize) {
        yield page;
        page = [];
      }
    }
  }
  if (page.length > 0) yield page;
}

async function endsWithLf(path: string): Promise<boolean> {
  const h = await open(path, 'r');
  try {
    const { size } = await h.stat();
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    await h.read(b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    await h.close();
  }
}

/** Streams present under a sink directory. */
export async function jsonlStreams(root: string): Promise<string[]> {
  try {
    return (await readdir(root, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && STREAM_DIR.test(d.name))
      .map((d) => d.name)
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Verifies the JSONL chains under `dir` (one tenant's, or all), against the anchors. */
export async function verifyJsonl(options: {
  /** The sink's root directory. */
  dir: string;
  /** Anchors (head checkpoints and retention checkpoints). */
  anchors: AnchorStore;
  /** Only this tenant's stream (`null`: the unauthenticated stream). Default every stream. */
  tenant?: string | null;
}): Promise<VerifyReport> {
  const started = performance.now();
  const names =
    options.tenant === undefined ? await jsonlStreams(options.dir) : [streamName({ tenant_id: options.tenant })];
  const streams: StreamReport[] = [];
  for (const stream of names) {
    const anchors = await options.anchors.list(stream);
    const malformedAt = { seq: 0 };
    const pages = async function* (): AsyncGenerator<ChainRow[]> {
      for await (const page of readStreamRows(options.dir, stream)) {
        const i = page.findIndex((r) => r.malformed);
        if (i >= 0) {
          malformedAt.seq = (page[i] as FileRow).seq;
          if (i > 0) yield page.slice(0, i);
          return;
        }
        yield page;
      }
    };
    let report = await verifyStream({
      stream,
      anchors,
      pages: pages(),
      findByHash: async (hash) => {
        for await (const page of readStreamRows(options.dir, stream)) {
          for (const r of page) if (r.hash === hash) return r.seq;
        }
        return null;
      },
      hasSeq: async (seq) => {
        for await (const page of readStreamRows(options.dir, stream)) if (page.some((r) => r.seq === seq)) return true;
        return false;
      },
    });
    if (malformedAt.seq > 0 && (report.ok || (report.break?.seq ?? 0) >= malformedAt.seq)) {
      report = {
        ...report,
        ok: false,
        break: {
          seq: malformedAt.seq,
          cause: 'edit',
          message: `the record after seq ${malformedAt.seq - 1} is not a valid line`,
        },
      };
    }
    streams.push(report);
  }
  return { ok: streams.every((s) => s.ok), streams, elapsedMs: performance.now() - started };
}

/** Checkpoints every stream's current head (as stored in the files) into `anchors`. */
export async function anchorJsonl(options: { dir: string; anchors: AnchorStore }): Promise<Anchor[]> {
  const out: Anchor[] = [];
  for (const stream of await jsonlStreams(options.dir)) {
    let last: ChainRow | undefined;
    for await (const page of readStreamRows(options.dir, stream)) last = page[page.length - 1] ?? last;
    if (last) out.push({ stream, seq: last.seq, hash: last.hash, kind: 'head' });
  }
  await options.anchors.record(out);
  return out;
}

/**
 * Retention for one JSONL stream: deletes whole day files older than the cutoff (never the
 * newest file, which holds the head), after recording a `purge` checkpoint, then writes an
 * `audit_purge` event through `sink`.
 */
export async function purgeJsonl(options: {
  sink: ChainedJsonlAuditSink;
  anchors: AnchorStore;
  tenant: string | null;
  /** Default 400; under 365 is refused. */
  olderThanDays?: number;
  now?: Date;
  actor?: string;
}): Promise<{ purgedFiles: string[]; purgedThrough: number | null }> {
  const days = options.olderThanDays ?? DEFAULT_RETENTION_DAYS;
  if (!Number.isFinite(days) || days < MIN_RETENTION_DAYS) {
    throw new TenantScopeError('INVALID_ARGUMENT', `retention must be at least ${MIN_RETENTION_DAYS} days`);
  }
  const stream = streamName({ tenant_id: options.tenant });
  const now = options.now ?? new Date();
  const cutoffDay = new Date(now.getTime() - days * 86_400_000).toISOString().slice(0, 10);
  const files = await dayFiles(options.sink.dir, stream);
  const doomed = files.slice(0, -1).filter((f) => f.slice(0, 10) < cutoffDay);
  if (doomed.length === 0) return { purgedFiles: [], purgedThrough: null };
  const lastDoomed = join(options.sink.dir, stream, doomed[doomed.length - 1] as string);
  const text = await readFile(lastDoomed, 'utf8');
  const lines = text.split('\n').filter(Boolean);
  const last = parseLine(lines[lines.length - 1] ?? '');
  if (!last)
    throw new TenantScopeError('AUDIT_CHAIN_BROKEN', 'cannot checkpoint: last purged line is invalid', { status: 500 });
  await options.anchors.record([{ stream, seq: last.seq, hash: last.hash, kind: 'purge' }]);
  for (const f of doomed) await unlink(join(options.sink.dir, stream, f));
  await options.sink.write(
    purgeEvent({
      tenant: options.tenant,
      actor: options.actor,
      now,
      details: {
        purged_files: doomed.length,
        purged_through_seq: last.seq,
        retention_days: days,
        cutoff_day: cutoffDay,
      },
    }),
  );
  return { purgedFiles: doomed, purgedThrough: last.seq };
}
