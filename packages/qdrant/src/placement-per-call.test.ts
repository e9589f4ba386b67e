/**
 * Placement resolved per operation (issue 14 §2): a handle kept across a move follows it, sync and
 * async resolvers (the registry's shape, `{ id }`), resolver failures typed, and the write bound:
 * a write whose place changed between its resolve and its send is not sent (PLACEMENT_PAUSED).
 */
import type { QdrantClient } from '@qdrant/js-client-rest';
import { TenantScopeError } from '@tenantscope/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopedQdrant } from './client.ts';
import { type QdrantPlacementInput, registryPlacement } from './placement.ts';
import { codeOf, createHarness, FIELD, type Harness, vec } from './testing/harness.ts';

let h: Harness;
let own: string;
let sharded: string;

beforeAll(async () => {
  h = await createHarness();
  own = `${h.collection}_own`;
  sharded = `${h.collection}_sk`;
  await h.raw.createCollection(own, { vectors: { size: 4, distance: 'Cosine' } });
  await h.raw.createCollection(sharded, { vectors: { size: 4, distance: 'Cosine' }, sharding_method: 'custom' });
  await h.raw.createShardKey(sharded, { shard_key: 'acme' });
  console.log(`[qdrant placement per call] against ${h.source}`);
});

afterAll(async () => {
  await h?.raw.deleteCollection(own).catch(() => undefined);
  await h?.raw.deleteCollection(sharded).catch(() => undefined);
  await h?.close();
});

/** Ids of the tenant's points in a collection, read unscoped (every shard key). */
async function idsIn(collection: string, tenant = 'acme'): Promise<unknown[]> {
  const r = await h.raw.scroll(collection, {
    filter: { must: [{ key: FIELD, match: { value: tenant } }] },
    limit: 1000,
  });
  return r.points.map((p) => p.id).sort();
}

/** A resolver whose answer the test switches, like a registry row changing under a move. */
function switchable(first: QdrantPlacementInput) {
  const state = { now: first, calls: 0 };
  return {
    state,
    sync: (_id: string) => {
      state.calls++;
      return state.now;
    },
    async: async (_t: { readonly id: string }) => {
      state.calls++;
      return state.now;
    },
  };
}

describe('placement resolved per operation', () => {
  it('a handle kept across a move writes and reads at the new place (sync resolver)', async () => {
    const r = switchable({ tier: 'shared', collection: h.collection });
    const a = scopedQdrant(h.raw, { collection: h.collection, tenantField: FIELD, placement: r.sync }).forTenant(
      h.acme,
    );
    await a.upsert({ points: [{ id: 7001, vector: vec(1) }] });
    r.state.now = { tier: 'dedicated', collection: own };
    await a.upsert({ points: [{ id: 7002, vector: vec(2) }] });
    expect(a.placement).toEqual({ tier: 'dedicated', kind: 'collection', collection: own });
    expect(await idsIn(own)).toEqual([7002]);
    expect(await idsIn(h.collection)).toContain(7001);
    expect(await idsIn(h.collection)).not.toContain(7002);
    expect((await a.scroll({ limit: 10 })).points.map((p) => p.id)).toEqual([7002]);
    // And on to its own shard key: shard_key on every request, the filter still on.
    r.state.now = { tier: 'dedicated', collection: sharded, shardKey: 'acme' };
    await a.upsert({ points: [{ id: 7003, vector: vec(3) }] });
    expect(await idsIn(sharded)).toEqual([7003]);
    expect(await a.count()).toBe(1);
    await a.data.delete();
    r.state.now = { tier: 'dedicated', collection: own };
    await a.data.delete();
    await h.raw.delete(h.collection, { wait: true, points: [7001] });
  });

  it('an async resolver in the registry shape ({ id }) works and is asked on every operation', async () => {
    const r = switchable({ tier: 'dedicated', collection: own });
    const s = scopedQdrant(h.raw, { collection: h.collection, tenantField: FIELD, placementResolver: r.async });
    const a = s.forTenant(h.acme);
    await a.upsert({ points: [{ id: 7101, vector: vec(1) }] });
    expect(await a.resolvePlacement()).toEqual({ tier: 'dedicated', kind: 'collection', collection: own });
    const before = r.state.calls;
    await a.count();
    await a.query({ query: vec(1), limit: 1 });
    expect(r.state.calls - before).toBe(2); // count and query: one resolve each
    expect(await idsIn(own)).toEqual([7101]);
    await a.data.delete();
  });

  it('the registry row mapping: shared, own collection, own shard key (listed collections only)', () => {
    const map = registryPlacement('docs', { shardKeyCollections: ['docs_sk'] });
    expect(map({ tier: 'shared', target: null }, 'acme')).toEqual({
      tier: 'shared',
      kind: 'shared',
      collection: 'docs',
    });
    expect(map({ tier: 'dedicated', target: 'docs_acme' }, 'acme')).toEqual({
      tier: 'dedicated',
      kind: 'collection',
      collection: 'docs_acme',
    });
    expect(map({ tier: 'dedicated', target: 'docs_sk' }, 'acme')).toEqual({
      tier: 'dedicated',
      kind: 'shard-key',
      collection: 'docs_sk',
      shardKey: 'acme',
    });
    expect(() => registryPlacement('../x')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('resolver failures are typed and send nothing: its own code passes through, anything else is UNAVAILABLE', async () => {
    const paused = new TenantScopeError('PLACEMENT_PAUSED', 'moving', { status: 503 });
    for (const [fail, code] of [
      [() => Promise.reject(paused), 'PLACEMENT_PAUSED'],
      [() => Promise.reject(new Error('registry down: secret detail')), 'UNAVAILABLE'],
      [
        () => {
          throw new Error('sync boom');
        },
        'UNAVAILABLE',
      ],
    ] as const) {
      const s = scopedQdrant(h.proxied, { collection: h.collection, tenantField: FIELD, placementResolver: fail });
      h.proxy.clear();
      let a: ReturnType<typeof s.forTenant> | undefined;
      const err = await (async () => {
        a = s.forTenant(h.acme);
        return a.upsert({ points: [{ id: 7201, vector: vec(1) }] });
      })().catch((e: unknown) => e);
      expect(err).toMatchObject({ code });
      expect(String((err as Error).message)).not.toContain('secret detail');
      // (the one-time server version check may go out; no request touches points)
      expect(h.proxy.requests.filter((q) => q.path.includes('/points'))).toEqual([]);
    }
    expect(() =>
      scopedQdrant(h.raw, {
        collection: h.collection,
        placement: () => ({ tier: 'shared', collection: 'x' }),
        placementResolver: async () => ({ tier: 'shared', collection: 'x' }),
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('a write delayed between its resolve and its send, past a move, is NOT sent to the old place (nor the new)', async () => {
    const r = switchable({ tier: 'shared', collection: h.collection });
    // The upsert's ownership check (a scroll) is held until the placement has switched.
    let release: () => void = () => undefined;
    const held = new Promise<void>((res) => {
      release = res;
    });
    let reached: () => void = () => undefined;
    const atScroll = new Promise<void>((res) => {
      reached = res;
    });
    const slow = new Proxy(h.raw, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (prop !== 'scroll' || typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          reached();
          await held;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as QdrantClient;
    const a = scopedQdrant(slow, { collection: h.collection, tenantField: FIELD, placement: r.sync }).forTenant(h.acme);
    const write = a
      .upsert({ points: [{ id: 7301, vector: vec(1), payload: { late: true } }] })
      .catch((e: unknown) => e);
    await atScroll;
    r.state.now = { tier: 'dedicated', collection: own }; // the move switched meanwhile
    release();
    const err = await write;
    expect(err).toMatchObject({ code: 'PLACEMENT_PAUSED', status: 503 });
    expect(await idsIn(h.collection)).not.toContain(7301);
    expect(await idsIn(own)).not.toContain(7301);
    // The retry goes to the new place.
    expect(await codeOf(a.upsert({ points: [{ id: 7301, vector: vec(1) }] }))).toBe('ok');
    expect(await idsIn(own)).toEqual([7301]);
    await h.raw.delete(own, { wait: true, points: [7301] });
  });
});
