/**
 * Test harness for the @tenantscope/qdrant suites (not exported from the package). It talks to
 * the Qdrant the global setup resolved (QDRANT_URL, testcontainers, or the QdrantProtocolDouble)
 * through a recording proxy, so every suite can also assert the wire-level invariant.
 */
import { randomUUID } from 'node:crypto';
import { QdrantClient } from '@qdrant/js-client-rest';
import type { Tenant } from '@tenantscope/core';
import {
  createTestIssuer,
  type QdrantRecordingProxy,
  qdrantWireViolations,
  type RecordedQdrantRequest,
  startQdrantRecordingProxy,
} from '@tenantscope/testkit';
import { inject } from 'vitest';
import { type ScopedQdrant, type ScopedQdrantOptions, scopedQdrant } from '../client.ts';
import { dedicatedCollections, shardKeyTier } from '../placement.ts';
import { routedToShardKey } from '../shard-key.ts';

export const DIM = 4;
export const FIELD = 'tenant_id';

export interface Harness {
  /** Unscoped client straight to the server (for seeding and checking, never through the proxy). */
  raw: QdrantClient;
  /** Client whose every request goes through the recording proxy. */
  proxied: QdrantClient;
  proxy: QdrantRecordingProxy;
  collection: string;
  scoped: ScopedQdrant;
  acme: Tenant;
  globex: Tenant;
  source: string;
  /** `collection` and `placement` of the tier under test, to build another scope on it. */
  tierOptions: Pick<ScopedQdrantOptions, 'collection' | 'placement'>;
  close(): Promise<void>;
}

/** A unit vector pointing mostly along axis `i % DIM`, with a small per-id tilt. */
export function vec(i: number): number[] {
  const v = [0.1, 0.1, 0.1, 0.1];
  v[i % DIM] = 1;
  v[(i + 1) % DIM] = 0.1 + (i % 7) / 20;
  return v;
}

export const ACME_IDS = [1, 2, 3, 4, 5];
export const GLOBEX_IDS = [101, 102, 103, 104, 105];

/** Seed payload: same shapes for both tenants so a leak would show up in any result. */
export function seedPayload(tenant: string, id: number): Record<string, unknown> {
  return {
    [FIELD]: tenant,
    title: `${tenant} doc ${id}`,
    color: ['red', 'green', 'blue'][id % 3],
    rank: id,
    tags: [tenant, `t${id % 2}`],
    diet: [
      { food: 'meat', likes: id % 2 === 0, owner: tenant },
      { food: 'leaves', likes: id % 2 === 1, owner: tenant },
    ],
  };
}

let tier: 'shared' | 'collection' | 'shard-key' = 'shared';
/** The custom-sharded collection of the shard-key tier, for the wire invariant. */
let shardKeyCollection: string | undefined;
/**
 * Runs this test file's harnesses on the dedicated tier: acme gets a collection of its own (the
 * harness collection, seeded as usual, so globex's points in it are strays the tenant filter must
 * still hide), every other tenant stays in an empty shared collection. Call before createHarness.
 */
export function useDedicatedCollectionTier(): void {
  tier = 'collection';
}

/**
 * Runs this test file's harnesses on the shard-key tier: the harness collection is created with
 * `sharding_method: 'custom'` and shard keys `acme` and `globex`; acme's seed points AND globex's
 * (strays the tenant filter must still hide) are written under the shard key `acme`, and acme's
 * placement is its shard key there. Every other tenant stays in an empty shared collection. The
 * harness's raw client writes to h.collection under the shard key `acme` (Qdrant refuses a write
 * without one) and reads every shard key. Call before createHarness.
 */
export function useShardKeyTier(): void {
  tier = 'shard-key';
}

/** Raw writes to `collection` go under `shardKey`; reads are untouched (they see every shard key). */
function rawWritesUnder(raw: QdrantClient, collection: string, shardKey: string): QdrantClient {
  const routed = routedToShardKey(raw, collection, shardKey);
  const writes = new Set(['upsert', 'delete', 'setPayload', 'overwritePayload', 'deletePayload', 'clearPayload']);
  return new Proxy(raw, {
    get: (target, prop) => (writes.has(String(prop)) ? Reflect.get(routed, prop) : Reflect.get(target, prop, target)),
  });
}

export async function createHarness(options: Partial<ScopedQdrantOptions> = {}, seed = true): Promise<Harness> {
  const url = inject('qdrantUrl');
  const apiKey = inject('qdrantApiKey') || undefined;
  const source = inject('qdrantSource');
  const direct = new QdrantClient({ url, apiKey, checkCompatibility: false });
  const proxy = await startQdrantRecordingProxy(url);
  const proxied = new QdrantClient({ url: proxy.url, apiKey, checkCompatibility: false });
  const collection = `ts_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const raw = tier === 'shard-key' ? rawWritesUnder(direct, collection, 'acme') : direct;
  if (tier === 'shard-key') {
    await raw.createCollection(collection, { vectors: { size: DIM, distance: 'Cosine' }, sharding_method: 'custom' });
    for (const key of ['acme', 'globex']) await raw.createShardKey(collection, { shard_key: key });
    shardKeyCollection = collection;
  } else {
    await raw.createCollection(collection, { vectors: { size: DIM, distance: 'Cosine' } });
  }
  if (seed) {
    await raw.upsert(collection, {
      wait: true,
      points: [
        ...ACME_IDS.map((id) => ({ id, vector: vec(id), payload: seedPayload('acme', id) })),
        ...GLOBEX_IDS.map((id) => ({ id, vector: vec(id - 100), payload: seedPayload('globex', id) })),
      ],
    });
  }
  const issuer = await createTestIssuer();
  const acme = await issuer.tenant('acme');
  const globex = await issuer.tenant('globex');
  const shared = tier === 'shared' ? collection : `${collection}_shared`;
  if (tier !== 'shared') await raw.createCollection(shared, { vectors: { size: DIM, distance: 'Cosine' } });
  const tierOptions: Harness['tierOptions'] = {
    collection: shared,
    ...(tier === 'collection'
      ? { placement: dedicatedCollections(shared, (id) => (id === 'acme' ? collection : undefined)) }
      : {}),
    ...(tier === 'shard-key'
      ? { placement: shardKeyTier(collection, { shared, isDedicated: (id) => id === 'acme' }) }
      : {}),
  };
  const scoped = scopedQdrant(proxied, { ...tierOptions, tenantField: FIELD, ...options });
  proxy.clear();
  return {
    raw,
    proxied,
    proxy,
    collection,
    scoped,
    acme,
    globex,
    source,
    tierOptions,
    async close() {
      await raw.deleteCollection(collection).catch(() => undefined);
      if (shared !== collection) await raw.deleteCollection(shared).catch(() => undefined);
      await proxy.close();
    },
  };
}

/** Globex's points as they are now (read unscoped), for "nothing foreign changed" checks. */
export async function snapshot(h: Harness, tenant = 'globex'): Promise<string> {
  const r = await h.raw.scroll(h.collection, {
    filter: { must: [{ key: FIELD, match: { value: tenant } }] },
    limit: 1000,
    with_payload: true,
    with_vector: true,
  });
  return JSON.stringify(r.points.map((p) => ({ id: p.id, payload: p.payload, vector: p.vector })));
}

/** Ids in a result that are not the given tenant's seed points. */
export function foreign(
  points: { id: unknown; payload?: Record<string, unknown> | null }[],
  tenant = 'acme',
): unknown[] {
  return points.filter((p) => (p.payload ? p.payload[FIELD] !== tenant : !isOwnSeedId(p.id, tenant))).map((p) => p.id);
}

function isOwnSeedId(id: unknown, tenant: string): boolean {
  return tenant === 'acme' ? typeof id === 'number' && id < 100 : typeof id === 'number' && id >= 100;
}

/** Error code of a rejected promise, or 'ok' (the testkit's). */
export { codeOf } from '@tenantscope/testkit';

const WRITE_PATHS = [
  /^PUT \/collections\/[^/]+\/points$/,
  /^POST \/collections\/[^/]+\/points\/delete$/,
  /^PUT \/collections\/[^/]+\/points\/vectors$/,
  /^POST \/collections\/[^/]+\/points\/vectors\/delete$/,
  /^(POST|PUT) \/collections\/[^/]+\/points\/payload$/,
  /^POST \/collections\/[^/]+\/points\/payload\/(delete|clear)$/,
];

/** Requests that change data. */
export function writes(requests: readonly RecordedQdrantRequest[]): RecordedQdrantRequest[] {
  return requests.filter((r) => WRITE_PATHS.some((re) => re.test(`${r.method} ${r.path}`)));
}

/**
 * The wire-level invariant for `tenant` (see `qdrantWireViolations` in the testkit): the tenant
 * condition at the top-level `must` of every filter, no unfiltered points endpoint, the tenant in
 * every written payload, no key path at the tenant field, exact counts, and the tenant IDF corpus
 * on every search of `idfVectors`. Returns the violations (empty when it holds).
 */
export function wireViolations(
  requests: readonly RecordedQdrantRequest[],
  tenant: string,
  field = FIELD,
  idfVectors?: ReadonlySet<string>,
): string[] {
  const shardKey =
    tier === 'shard-key' && tenant === 'acme' && shardKeyCollection
      ? { collection: shardKeyCollection, key: 'acme' }
      : undefined;
  return qdrantWireViolations(requests, { tenant, field, idfVectors, shardKey });
}
