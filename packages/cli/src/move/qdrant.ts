/**
 * Moving a tenant's points between the shared collection and a collection of its own
 * (`dedicatedCollections`). Every read and delete carries the tenant filter, on both sides, so
 * the tenant field stays a second wall in the dedicated collection too. Points keep their ids,
 * payloads (tenant field included) and vectors.
 */

import { createHash } from 'node:crypto';
import type { QdrantClient } from '@qdrant/js-client-rest';
import { argsHash } from '@tenantscope/core';
import type { TierTarget } from '@tenantscope/postgres';
import { cliError } from '../errors.ts';
import type { Measure, StoreMover } from './run.ts';

const PAGE = 256;

interface Point {
  id: string | number;
  payload?: Record<string, unknown> | null;
  vector?: unknown;
}

/**
 * Vectors to 6 significant digits: Qdrant stores float32 and normalises Cosine vectors on every
 * upsert, so a copied vector may differ from its source in the last bits.
 */
function rounded(v: unknown): unknown {
  if (typeof v === 'number') return Number(v.toPrecision(6));
  if (Array.isArray(v)) return v.map(rounded);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rounded(x)]));
  return v;
}

export class QdrantMover implements StoreMover {
  readonly store = 'qdrant' as const;
  readonly #client: QdrantClient;
  readonly #shared: string;
  readonly #filter: { must: { key: string; match: { value: string } }[] };

  constructor(client: QdrantClient, sharedCollection: string, tenantField: string, tenant: string) {
    this.#client = client;
    this.#shared = sharedCollection;
    this.#filter = { must: [{ key: tenantField, match: { value: tenant } }] };
  }

  #collection(at: TierTarget): string {
    return at.tier === 'shared' ? this.#shared : (at.target as string);
  }

  /** The tenant's points in id order, a page at a time. */
  async *#points(collection: string): AsyncGenerator<Point[]> {
    let offset: string | number | undefined;
    do {
      let r: Awaited<ReturnType<QdrantClient['scroll']>>;
      try {
        r = await this.#client.scroll(collection, {
          filter: this.#filter,
          limit: PAGE,
          with_payload: true,
          with_vector: true,
          ...(offset === undefined ? {} : { offset }),
        });
      } catch (err) {
        if ((err as { status?: number }).status === 404) {
          throw cliError('CLI_USAGE', `qdrant: no collection ${collection} (create it first)`, { cause: err });
        }
        throw err;
      }
      yield r.points as Point[];
      const next = r.next_page_offset;
      offset = typeof next === 'string' || typeof next === 'number' ? next : undefined;
    } while (offset !== undefined);
  }

  /** Count, and sha256 over the canonical hash of every point (id, payload, vector) in id order. */
  async measure(at: TierTarget): Promise<Measure> {
    const all = createHash('sha256');
    let n = 0;
    for await (const page of this.#points(this.#collection(at))) {
      for (const p of page) {
        all.update(`${argsHash({ id: p.id, payload: p.payload ?? null, vector: rounded(p.vector ?? null) })}\n`);
        n++;
      }
    }
    return { total: n, parts: { points: { n, sum: all.digest('hex') } } };
  }

  /** Deletes the tenant's points at `to`, then upserts every point of `from` (skipped when equal). */
  async copy(from: TierTarget, to: TierTarget): Promise<void> {
    const [a, b] = await Promise.all([this.measure(from), this.measure(to)]);
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    await this.wipe(to);
    const dst = this.#collection(to);
    for await (const page of this.#points(this.#collection(from))) {
      if (page.length === 0) continue;
      await this.#client.upsert(dst, {
        wait: true,
        points: page.map((p) => ({
          id: p.id,
          vector: p.vector as number[],
          payload: p.payload ?? {},
        })),
      });
    }
  }

  async wipe(at: TierTarget): Promise<void> {
    await this.#client.delete(this.#collection(at), { wait: true, filter: this.#filter });
  }

  async close(): Promise<void> {}
}
