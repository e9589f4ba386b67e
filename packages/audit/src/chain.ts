import { createHash } from 'node:crypto';

/** The `prev_hash` of a stream's first event: 32 zero bytes, hex. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * One link of a stream's chain: `hash = SHA-256(prev_hash ‖ canonical event)`, where `prev_hash`
 * is the previous event's hash as 32 raw bytes and the event is its RFC 8785 canonical JSON
 * (core's `canonicalJson`) in UTF-8. Hex in, hex out.
 */
export function linkHash(prevHashHex: string, canonicalEvent: string): string {
  return createHash('sha256').update(Buffer.from(prevHashHex, 'hex')).update(canonicalEvent, 'utf8').digest('hex');
}

/** One stored event as the verifier reads it back. */
export interface ChainRow {
  seq: number;
  /** Stored previous hash (hex). */
  prevHash: string;
  /** Stored hash (hex). */
  hash: string;
  /** The stored canonical event text, byte for byte. */
  event: string;
}

/** A chain checkpoint: `hash` is the stored hash of the event numbered `seq` in `stream`. */
export interface Anchor {
  stream: string;
  seq: number;
  hash: string;
  /** `head`: a periodic checkpoint of the stream's head; `purge`: the last event removed by retention. */
  kind: 'head' | 'purge';
  /** When it was recorded (ISO-8601). */
  recordedAt?: string;
}

/**
 * Why a chain does not verify.
 * - `edit`: an event's content (or its stored prev_hash) was changed.
 * - `deletion`: events are missing before this point.
 * - `reorder`: this event was moved from elsewhere in the stream.
 * - `insertion`: this event was not written by the chain (it was slipped in).
 * - `truncation`: the stream ends before an anchored head (its tail was removed).
 * - `rewrite`: the chain is internally consistent but differs from an anchored head, so it was
 *   recomputed after the anchor (the change is at or before `seq`).
 */
export type BreakCause = 'edit' | 'deletion' | 'reorder' | 'insertion' | 'truncation' | 'rewrite';

/** The first broken link of a stream. */
export interface ChainBreak {
  /** Sequence number where the chain first breaks (for `deletion`, the first missing number). */
  seq: number;
  cause: BreakCause;
  /** One sentence for an operator. Carries sequence numbers only, never event content. */
  message: string;
}

/** Verification result for one stream. */
export interface StreamReport {
  stream: string;
  ok: boolean;
  /** Events checked. */
  events: number;
  /** First and last sequence number seen (null when the stream has no stored events). */
  firstSeq: number | null;
  lastSeq: number | null;
  /** Hash of the last verified event (the head), or the start point when empty. */
  head: string;
  /** Highest anchored sequence number the stream was checked against, if any. */
  anchoredSeq: number | null;
  /** Sequence number retention purged through (the chain starts after it), if any. */
  purgedThrough: number | null;
  break?: ChainBreak;
}

/** Verification result for every stream checked. */
export interface VerifyReport {
  ok: boolean;
  streams: StreamReport[];
  /** Wall time of the run, milliseconds. */
  elapsedMs: number;
}

export interface VerifyStreamInput {
  stream: string;
  /** Rows in ascending seq order, in pages. */
  pages: AsyncIterable<ChainRow[]> | Iterable<ChainRow[]>;
  /** Every anchor known for the stream (head and purge). */
  anchors: readonly Anchor[];
  /** Sequence number of the stored row whose hash is `hash`, or null. Used only to name a break. */
  findByHash(hash: string): Promise<number | null>;
  /**
   * Whether a row numbered `seq` exists anywhere in the stream (for stores where the number
   * travels with the record, e.g. files). Used only to tell a reorder from a deletion.
   */
  hasSeq?(seq: number): Promise<boolean>;
}

/**
 * Recomputes one stream's chain from its start point (genesis, or the latest retention
 * checkpoint) and reports the first broken link with its cause, then checks the anchored heads.
 */
export async function verifyStream(input: VerifyStreamInput): Promise<StreamReport> {
  const purge = input.anchors
    .filter((a) => a.kind === 'purge')
    .reduce<Anchor | null>((m, a) => (m === null || a.seq > m.seq ? a : m), null);
  const heads = new Map<number, string>();
  let maxAnchor: Anchor | null = null;
  for (const a of input.anchors) {
    if (a.kind !== 'head') continue;
    if (purge && a.seq <= purge.seq) continue;
    heads.set(a.seq, a.hash);
    if (maxAnchor === null || a.seq > maxAnchor.seq) maxAnchor = a;
  }
  const report: StreamReport = {
    stream: input.stream,
    ok: true,
    events: 0,
    firstSeq: null,
    lastSeq: null,
    head: purge ? purge.hash : GENESIS_HASH,
    anchoredSeq: maxAnchor?.seq ?? null,
    purgedThrough: purge?.seq ?? null,
  };
  let expectedSeq = purge ? purge.seq + 1 : 1;
  let expectedPrev = purge ? purge.hash : GENESIS_HASH;
  let prevPrev: string | null = null;
  let pending: ChainRow | undefined;

  const fail = (b: ChainBreak): StreamReport => {
    report.ok = false;
    report.break = b;
    return report;
  };

  // Walk with one row of look-ahead (the classifier needs the next row).
  const check = async (r: ChainRow, next: ChainRow | undefined): Promise<StreamReport | null> => {
    if (r.seq < expectedSeq && purge && r.seq <= purge.seq) return null; // left behind by a purge: ignore
    if (report.firstSeq === null) report.firstSeq = r.seq;
    if (r.seq === expectedSeq && r.prevHash === expectedPrev && linkHash(expectedPrev, r.event) === r.hash) {
      const anchored = heads.get(r.seq);
      if (anchored !== undefined && anchored !== r.hash) {
        return fail({
          seq: r.seq,
          cause: 'rewrite',
          message: `the chain differs from the head anchored at seq ${r.seq}: it was recomputed at or before that event`,
        });
      }
      prevPrev = expectedPrev;
      expectedPrev = r.hash;
      expectedSeq++;
      report.events++;
      report.lastSeq = r.seq;
      report.head = r.hash;
      return null;
    }
    return fail(await classify(r, next));
  };

  const classify = async (r: ChainRow, next: ChainRow | undefined): Promise<ChainBreak> => {
    if (r.seq > expectedSeq) {
      if ((next && next.seq === expectedSeq) || (await input.hasSeq?.(expectedSeq))) {
        return {
          seq: expectedSeq,
          cause: 'reorder',
          message: `event seq ${expectedSeq} is out of place: seq ${r.seq} comes before it`,
        };
      }
      const last = r.seq - 1;
      return {
        seq: expectedSeq,
        cause: 'deletion',
        message:
          last === expectedSeq
            ? `event seq ${expectedSeq} is missing`
            : `events seq ${expectedSeq}..${last} are missing`,
      };
    }
    if (r.seq < expectedSeq) {
      return { seq: r.seq, cause: 'insertion', message: `a second event with seq ${r.seq} was inserted` };
    }
    if (prevPrev !== null && r.prevHash === prevPrev && r.prevHash !== expectedPrev) {
      return {
        seq: r.seq - 1,
        cause: 'insertion',
        message: `event seq ${r.seq - 1} was inserted: seq ${r.seq} chains onto seq ${r.seq - 2}`,
      };
    }
    if (r.prevHash === expectedPrev) {
      if (next && next.prevHash === expectedPrev) {
        return {
          seq: r.seq,
          cause: 'insertion',
          message: `event seq ${r.seq} was inserted: seq ${next.seq} chains onto seq ${r.seq - 1}`,
        };
      }
      return { seq: r.seq, cause: 'edit', message: `event seq ${r.seq} was changed after it was written` };
    }
    if (linkHash(expectedPrev, r.event) === r.hash) {
      return { seq: r.seq, cause: 'edit', message: `the stored prev_hash of event seq ${r.seq} was changed` };
    }
    const from = await input.findByHash(r.prevHash);
    if (from !== null) {
      return {
        seq: r.seq,
        cause: 'reorder',
        message: `event seq ${r.seq} was moved: it follows the event now at seq ${from}`,
      };
    }
    if (next && next.prevHash === expectedPrev) {
      return {
        seq: r.seq,
        cause: 'insertion',
        message: `event seq ${r.seq} was inserted: seq ${next.seq} chains onto seq ${r.seq - 1}`,
      };
    }
    return {
      seq: r.seq,
      cause: 'deletion',
      message: `events between seq ${r.seq - 1} and seq ${r.seq} are missing (later events were renumbered)`,
    };
  };

  for await (const page of input.pages) {
    for (const row of page) {
      if (pending !== undefined) {
        const done = await check(pending, row);
        if (done) return done;
      }
      pending = row;
    }
  }
  if (pending !== undefined) {
    const done = await check(pending, undefined);
    if (done) return done;
  }

  if (maxAnchor && maxAnchor.seq >= expectedSeq) {
    return fail({
      seq: expectedSeq,
      cause: 'truncation',
      message:
        report.lastSeq === null
          ? `the stream is empty but a head was anchored at seq ${maxAnchor.seq}`
          : `the stream ends at seq ${report.lastSeq} but a head was anchored at seq ${maxAnchor.seq}`,
    });
  }
  return report;
}
