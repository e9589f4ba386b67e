/**
 * Moving a tenant's points between the shared collection and a dedicated place: a collection of
 * its own, or its own shard key (= the tenant id) in a custom-sharded collection. Which one is
 * read from the target collection's config (`sharding_method: 'custom'` → shard key; the key is
 * created if missing). Every read and delete carries the tenant filter, on both sides (and the
 * tenant's `shard_key` on the shard-key tier), so the tenant field stays a second wall there too.
 * Points keep their ids, payloads (tenant field included) and vectors.
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

/** Where the tenant's points are at one tier: a collection, and on the shard-key tier its key. */
interface Place {
  collection: string;
  /** The tenant id, when `collection` is custom-sharded. */
  shardKey?: string;
}

export class QdrantMover implements StoreMover {
  readonly store = 'qdrant' as const;
  readonly #client: QdrantClient;
  readonly #shared: string;
  readonly #tenant: string;
  readonly #filter: { must: { key: string; match: { value: string } }[] };
  readonly #custom = new Map<string, boolean>();

  constructor(client: QdrantClient, sharedCollection: string, tenantField: string, tenant: string) {
    this.#client = client;
    this.#shared = sharedCollection;
    this.#tenant = tenant;
    this.#filter = { must: [{ key: tenantField, match: { value: tenant } }] };
  }

  /** The collection of `at`, with the tenant's shard key when that collection is custom-sharded. */
  async #place(at: TierTarget): Promise<Place> {
    const collection = at.tier === 'shared' ? this.#shared : (at.target as string);
    let custom = this.#custom.get(collection);
    if (custom === undefined) {
      const info = await this.#client.getCollection(collection).catch((err: unknown) => {
        throw (err as { status?: number }).status === 404
          ? cliError('CLI_USAGE', `qdrant: no collection ${collection} (create it first)`, { cause: err })
          : err;
      });
      custom = (info.config?.params as { sharding_method?: string } | undefined)?.sharding_method === 'custom';
      if (custom && at.tier === 'shared') {
        throw cliError('CLI_CONFIG_INVALID', `qdrant: the shared collection ${collection} is custom-sharded`);
      }
      this.#custom.set(collection, custom);
    }
    return custom ? { collection, shardKey: this.#tenant } : { collection };
  }

  /** On the shard-key tier: whether the tenant's key exists (a missing key holds no points). */
  async #hasKey(p: Place): Promise<boolean> {
    if (p.shardKey === undefined) return true;
    const r = await this.#client.listShardKeys(p.collection);
    return (r.shard_keys ?? []).some((k) => k.key === p.shardKey);
  }

  /** The tenant's points in id order, a page at a time. */
  async *#points(p: Place): AsyncGenerator<Point[]> {
    if (!(await this.#hasKey(p))) return;
    const routing = p.shardKey === undefined ? {} : { shard_key: p.shardKey };
    let offset: string | number | undefined;
    do {
      let r: Awaited<ReturnType<QdrantClient['scroll']>>;
      try {
        r = await this.#client.scroll(p.collection, {
          ...routing,
          filter: this.#filter,
          limit: PAGE,
          with_payload: true,
          with_vector: true,
          ...(offset === undefined ? {} : { offset }),
        });
      } catch (err) {
        if ((err as { status?: number }).status === 404) {
          throw cliError('CLI_USAGE', `qdrant: no collection ${p.collection} (create it first)`, { cause: err });
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
    for await (const page of this.#points(await this.#place(at))) {
      for (const p of page) {
        all.update(`${argsHash({ id: p.id, payload: p.payload ?? null, vector: rounded(p.vector ?? null) })}\n`);
        n++;
      }
    }
    return { total: n, parts: { points: { n, sum: all.digest('hex') } } };
  }

  /**
   * Deletes the tenant's points at `to`, then upserts every point of `from` (skipped when equal).
   * On the shard-key tier the tenant's key is created first if it is missing.
   */
  async copy(from: TierTarget, to: TierTarget): Promise<void> {
    const [a, b] = await Promise.all([this.measure(from), this.measure(to)]);
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const dst = await this.#place(to);
    if (!(await this.#hasKey(dst))) {
      await this.#client.createShardKey(dst.collection, { shard_key: dst.shardKey as string });
    }
    await this.wipe(to);
    const routing = dst.shardKey === undefined ? {} : { shard_key: dst.shardKey };
    for await (const page of this.#points(await this.#place(from))) {
      if (page.length === 0) continue;
      await this.#client.upsert(dst.collection, {
        ...routing,
        wait: true,
        points: page.map((p) => ({
          id: p.id,
          vector: p.vector as number[],
          payload: p.payload ?? {},
        })),
      });
    }
  }

  /** Deletes the tenant's points at `at` (by the tenant filter; under its key on the shard-key tier). */
  async wipe(at: TierTarget): Promise<void> {
    const p = await this.#place(at);
    if (!(await this.#hasKey(p))) return;
    await this.#client.delete(p.collection, {
      ...(p.shardKey === undefined ? {} : { shard_key: p.shardKey }),
      wait: true,
      filter: this.#filter,
    });
  }

  async close(): Promise<void> {}
}
