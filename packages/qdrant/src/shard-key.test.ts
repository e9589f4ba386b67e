/**
 * The shard-key tier on its own: two walls, each tested without the other. The shard key routes
 * (a point under another tenant's shard key stays invisible and untouched even when its payload
 * claims acme, which the filter alone would let through); the tenant filter authorises (a globex
 * point under acme's shard key stays invisible, as on every tier). Plus placement checks and the
 * DSAR operations. Runs against QDRANT_URL, testcontainers, or the QdrantProtocolDouble (whose
 * custom sharding follows Qdrant's routing; see the testkit's double).
 */
import { randomUUID } from 'node:crypto';
import { QdrantClient } from '@qdrant/js-client-rest';
import type { Tenant } from '@tenantscope/core';
import {
  createTestIssuer,
  type QdrantRecordingProxy,
  qdrantWireViolations,
  startQdrantRecordingProxy,
} from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scopedQdrant, type TenantQdrant } from './client.ts';
import { checkPlacement, shardKeyTier } from './placement.ts';
import { codeOf, FIELD, vec } from './testing/harness.ts';

const url = inject('qdrantUrl');
const apiKey = inject('qdrantApiKey') || undefined;
const raw = new QdrantClient({ url, apiKey, checkCompatibility: false });
const collection = `ts_sk_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
const shared = `${collection}_shared`;
let proxy: QdrantRecordingProxy;
let acmeTenant: Tenant;
let acme: TenantQdrant;

const ids = async (shardKey: string, filter?: Record<string, unknown>) =>
  (await raw.scroll(collection, { shard_key: shardKey, filter, limit: 100, with_payload: true })).points
    .map((p) => p.id)
    .sort();

beforeAll(async () => {
  await raw.createCollection(collection, { vectors: { size: 4, distance: 'Cosine' }, sharding_method: 'custom' });
  await raw.createCollection(shared, { vectors: { size: 4, distance: 'Cosine' } });
  for (const key of ['acme', 'globex']) await raw.createShardKey(collection, { shard_key: key });
  await raw.createPayloadIndex(collection, { field_name: 'note', field_schema: 'keyword', wait: true });
  // acme's own points, and a globex stray, under acme's shard key
  await raw.upsert(collection, {
    wait: true,
    shard_key: 'acme',
    points: [
      { id: 1, vector: vec(1), payload: { [FIELD]: 'acme', note: 'own' } },
      { id: 2, vector: vec(2), payload: { [FIELD]: 'acme', note: 'own' } },
      { id: 21, vector: vec(3), payload: { [FIELD]: 'globex', note: 'stray' } },
    ],
  });
  // globex's points, and one whose payload claims acme (a forged or misrouted write), under globex's key
  await raw.upsert(collection, {
    wait: true,
    shard_key: 'globex',
    points: [
      { id: 11, vector: vec(1), payload: { [FIELD]: 'globex', note: 'theirs' } },
      { id: 12, vector: vec(2), payload: { [FIELD]: 'acme', note: 'claims acme' } },
    ],
  });
  proxy = await startQdrantRecordingProxy(url);
  const proxied = new QdrantClient({ url: proxy.url, apiKey, checkCompatibility: false });
  const issuer = await createTestIssuer();
  acmeTenant = await issuer.tenant('acme');
  acme = scopedQdrant(proxied, {
    collection: shared,
    tenantField: FIELD,
    placement: shardKeyTier(collection, { shared, isDedicated: (id) => id === 'acme' }),
  }).forTenant(acmeTenant);
});

afterAll(async () => {
  // every request acme sent carried its shard key and the tenant filter
  expect(proxy.requests.length).toBeGreaterThan(20);
  expect(
    qdrantWireViolations(proxy.requests, { tenant: 'acme', field: FIELD, shardKey: { collection, key: 'acme' } }),
  ).toEqual([]);
  await proxy?.close();
  await raw.deleteCollection(collection).catch(() => undefined);
  await raw.deleteCollection(shared).catch(() => undefined);
});

describe('shard-key tier: placement', () => {
  it('acme is placed on its own shard key', () => {
    expect(acme.placement).toEqual({ tier: 'dedicated', kind: 'shard-key', collection, shardKey: 'acme' });
  });

  it('fails closed on a shard key that is not the tenant id, the shared collection, or a bad name', () => {
    const refuse = (p: unknown) => {
      try {
        checkPlacement(p, 'acme', shared, () => new Error('unsupported'));
        return 'accepted';
      } catch (e) {
        return (e as { code?: string }).code ?? (e as Error).message;
      }
    };
    expect(refuse({ tier: 'dedicated', collection, shardKey: 'globex' })).toBe('INVALID_CONFIG');
    expect(refuse({ tier: 'dedicated', collection: shared, shardKey: 'acme' })).toBe('INVALID_CONFIG');
    expect(refuse({ tier: 'dedicated', collection: '../x', shardKey: 'acme' })).toBe('INVALID_CONFIG');
    expect(refuse({ tier: 'shared', kind: 'shard-key', collection, shardKey: 'acme' })).toBe('unsupported');
    expect(refuse({ tier: 'dedicated', collection, shardKey: 'acme' })).toBe('accepted');
    expect(() => shardKeyTier(collection, { isDedicated: () => true })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    const s = scopedQdrant(raw, {
      collection: shared,
      placement: () => ({ tier: 'dedicated', collection, shardKey: 'x' }),
    });
    expect(() => s.forTenant(acmeTenant)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('a caller-chosen shard_key is still refused', async () => {
    expect(await codeOf(acme.scroll({ shard_key: 'globex' } as never))).toBe('QDRANT_SHARD_KEY_REFUSED');
  });
});

describe('shard-key tier: the shard key routes', () => {
  it('reads see only acme’s shard key: a point under globex’s key that claims acme stays invisible', async () => {
    expect((await acme.scroll({ limit: 100 })).points.map((p) => p.id).sort()).toEqual([1, 2]);
    expect(await acme.retrieve({ ids: [11, 12, 21] })).toEqual([]);
    expect(await acme.count({ exact: true })).toBe(2);
    const q = await acme.query({ query: vec(2), limit: 10, with_payload: true });
    expect(q.points.map((p) => p.id).sort()).toEqual([1, 2]);
    expect((await acme.facet({ key: 'note' })).hits).toEqual([{ value: 'own', count: 2 }]);
    const batch = await acme.queryBatch({
      searches: [
        { query: vec(2), limit: 10 },
        { query: vec(1), limit: 10 },
      ],
    });
    expect(batch.map((r) => r.points.map((p) => p.id).sort())).toEqual([
      [1, 2],
      [1, 2],
    ]);
    // an example id under globex's key is not acme's
    expect(await codeOf(acme.query({ query: { recommend: { positive: [12] } } }))).toBe('QDRANT_POINT_NOT_FOUND');
  });

  it('writes land under acme’s shard key only and never reach globex’s', async () => {
    const before = await ids('globex');
    await acme.upsert({ points: [{ id: 3, vector: vec(3), payload: { note: 'new' } }] });
    expect(await ids('acme')).toEqual([1, 2, 21, 3].sort());
    // id 12 exists under globex's key (payload "acme"): acme writes its own point 12, under its key
    await acme.upsert({ points: [{ id: 12, vector: vec(2), payload: { note: 'mine' } }] });
    await acme.setPayload({ points: [12], payload: { touched: true } });
    await acme.delete({ filter: { must: [{ key: 'note', match: { value: 'claims acme' } }] } });
    await acme.delete({ points: [12] });
    expect(await ids('globex')).toEqual(before);
    const [theirs] = await raw.retrieve(collection, { shard_key: 'globex', ids: [12], with_payload: true });
    expect(theirs?.payload).toEqual({ [FIELD]: 'acme', note: 'claims acme' });
    await acme.delete({ points: [3] });
  });
});

describe('shard-key tier: the tenant filter is the second wall', () => {
  it('a globex point under acme’s shard key is invisible and untouchable', async () => {
    expect((await acme.scroll({ filter: { must: [{ key: FIELD, match: { value: 'globex' } }] } })).points).toEqual([]);
    await acme.delete({ points: [21] });
    await acme.setPayload({ points: [21], payload: { pwned: true } });
    expect(await codeOf(acme.upsert({ points: [{ id: 21, vector: vec(1), payload: {} }] }))).toBe(
      'QDRANT_POINT_ID_CONFLICT',
    );
    const [stray] = await raw.retrieve(collection, { shard_key: 'acme', ids: [21], with_payload: true });
    expect(stray?.payload).toEqual({ [FIELD]: 'globex', note: 'stray' });
  });
});

describe('shard-key tier: DSAR', () => {
  it('counts, exports and deletes acme’s points under its key; the rest stays', async () => {
    const data = scopedQdrant(raw, {
      collection: shared,
      tenantField: FIELD,
      placement: shardKeyTier(collection),
    }).tenantData(acmeTenant);
    expect((await data.count()).total).toBe(2);
    const exported: unknown[] = [];
    for await (const p of data.export()) exported.push(p.id);
    expect(exported.sort()).toEqual([1, 2]);
    expect(await data.delete()).toEqual({
      before: { store: 'qdrant', total: 2, parts: { points: 2 } },
      after: { store: 'qdrant', total: 0, parts: { points: 0 } },
    });
    expect(await ids('acme')).toEqual([21]);
    expect(await ids('globex')).toEqual([11, 12]);
  });
});
