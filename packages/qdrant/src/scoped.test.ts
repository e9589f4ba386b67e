/**
 * What the scoped client does for its own tenant (it must still be useful), the tenant index,
 * DSAR operations, the provider, the placement seam, and bad input (typed error, nothing written).
 */
import { QdrantClient } from '@qdrant/js-client-rest';
import type { CallInfo } from '@tenantscope/core';
import { QdrantProtocolDouble } from '@tenantscope/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { scopedQdrant } from './client.ts';
import { dedicatedCollections } from './placement.ts';
import {
  ACME_IDS,
  codeOf,
  createHarness,
  FIELD,
  foreign,
  GLOBEX_IDS,
  type Harness,
  snapshot,
  vec,
  wireViolations,
  writes,
} from './testing/harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  console.log(`[qdrant scoped client] against ${h.source}`);
});

afterAll(async () => {
  await h?.close();
});

describe('ensureTenantIndex', () => {
  it('creates a keyword index with is_tenant, and is idempotent', async () => {
    expect(await h.scoped.ensureTenantIndex()).toEqual({ created: true });
    expect(await h.scoped.ensureTenantIndex()).toEqual({ created: false });
    const info = await h.raw.getCollection(h.collection);
    const schema = info.payload_schema[FIELD] as { data_type: string; params?: { is_tenant?: boolean } };
    expect(schema.data_type).toBe('keyword');
    expect(schema.params?.is_tenant).toBe(true);
  });

  it('refuses an existing index of another kind on the tenant field', async () => {
    const c = `${h.collection}_ix`;
    await h.raw.createCollection(c, { vectors: { size: 4, distance: 'Cosine' } });
    try {
      await h.raw.createPayloadIndex(c, { field_name: FIELD, field_schema: 'integer', wait: true });
      const s = scopedQdrant(h.raw, { collection: c, tenantField: FIELD });
      expect(await codeOf(s.ensureTenantIndex())).toBe('QDRANT_INDEX_CONFLICT');
    } finally {
      await h.raw.deleteCollection(c);
    }
  });
});

describe('own-tenant operations', () => {
  beforeAll(() => h.proxy.clear());
  afterEach(() => {
    const sent = [...h.proxy.requests];
    h.proxy.clear();
    expect(wireViolations(sent, 'acme')).toEqual([]);
  });

  it('upsert forces the tenant payload; reads find the point', async () => {
    const acme = h.scoped.forTenant(h.acme);
    await acme.upsert({ points: [{ id: 20, vector: vec(2), payload: { title: 'twenty' } }] });
    const [raw] = await h.raw.retrieve(h.collection, { ids: [20], with_payload: true });
    expect(raw?.payload).toEqual({ title: 'twenty', [FIELD]: 'acme' });
    const [own] = await acme.retrieve({ ids: [20] });
    expect(own?.payload?.title).toBe('twenty');
    // a round-tripped payload that already names this tenant is accepted
    await acme.upsert({ points: [{ id: 20, vector: vec(2), payload: { ...own?.payload, title: 'again' } }] });
    expect((await acme.retrieve({ ids: [20] }))[0]?.payload?.title).toBe('again');
    // the batch form is converted to points
    await acme.upsert({ batch: { ids: [21, 22], vectors: [vec(1), vec(3)], payloads: [{ n: 21 }, { n: 22 }] } });
    expect((await acme.retrieve({ ids: [22, 21] })).map((p) => p.payload?.n)).toEqual([22, 21]);
    await acme.delete({ points: [20, 21, 22] });
    expect(await acme.retrieve({ ids: [20, 21, 22] })).toEqual([]);
  });

  it('query, legacy search, scroll, count, groups and batch return own points', async () => {
    const acme = h.scoped.forTenant(h.acme);
    const q = await acme.query({ query: vec(1), limit: 3, with_payload: true });
    expect(q.points[0]?.id).toBe(1);
    expect(foreign(q.points)).toEqual([]);
    const s = await acme.search({ vector: vec(2), limit: 1 });
    expect(s[0]?.id).toBe(2);
    const page = await acme.scroll({ limit: 2 });
    expect(page.points.map((p) => p.id)).toEqual([1, 2]);
    expect(page.next_page_offset).toBe(3);
    expect(await acme.count()).toBe(ACME_IDS.length);
    expect(await acme.count({ filter: { must: [{ key: 'color', match: { value: 'red' } }] } })).toBe(1);
    const g = await acme.queryGroups({ query: vec(1), group_by: 'color', limit: 5, group_size: 5 });
    expect(g.groups.flatMap((x) => x.hits).length).toBe(ACME_IDS.length);
    const b = await acme.queryBatch({
      searches: [
        { query: vec(1), limit: 1 },
        { query: vec(3), limit: 1 },
      ],
    });
    expect(b.map((r) => r.points[0]?.id)).toEqual([1, 3]);
  });

  it('payload operations keep the tenant field', async () => {
    const acme = h.scoped.forTenant(h.acme);
    await acme.setPayload({ points: [1], payload: { note: 'x' } });
    expect((await acme.retrieve({ ids: [1] }))[0]?.payload?.note).toBe('x');
    await acme.deletePayload({ points: [1], keys: ['note'] });
    expect((await acme.retrieve({ ids: [1] }))[0]?.payload?.note).toBeUndefined();
    await acme.overwritePayload({ points: [2], payload: { only: 1 } });
    expect((await h.raw.retrieve(h.collection, { ids: [2] }))[0]?.payload).toEqual({ only: 1, [FIELD]: 'acme' });
    await acme.clearPayload({ points: [2] });
    expect((await h.raw.retrieve(h.collection, { ids: [2] }))[0]?.payload).toEqual({ [FIELD]: 'acme' });
    await acme.setPayload({ points: [2], key: 'meta.review', payload: { by: 'ann' } });
    expect((await acme.retrieve({ ids: [2] }))[0]?.payload).toEqual({
      [FIELD]: 'acme',
      meta: { review: { by: 'ann' } },
    });
    await acme.deletePayload({ points: [2], keys: ['meta.review'] });
    expect((await acme.retrieve({ ids: [2] }))[0]?.payload).toEqual({ [FIELD]: 'acme', meta: {} });
    await acme.overwritePayload({ points: [2], payload: { title: 'acme doc 2', rank: 2, color: 'blue' } });
  });

  it('updates own vectors', async () => {
    const acme = h.scoped.forTenant(h.acme);
    await acme.updateVectors({ points: [{ id: 5, vector: vec(1) }] });
    const r = await acme.query({ query: vec(1), limit: 2 });
    expect(r.points.map((p) => p.id).sort()).toEqual([1, 5]);
    await acme.updateVectors({ points: [{ id: 5, vector: vec(5) }] });
  });

  it("the provider binds the call's tenant", () => {
    const provider = h.scoped.provider();
    const vectors = provider.forCall({ tenant: h.globex } as CallInfo);
    expect(vectors.tenantId).toBe('globex');
  });
});

describe('named vectors: delete vectors stays in the tenant', () => {
  it('deleteVectors by ids and filter only touches own points', async () => {
    const c = `${h.collection}_nv`;
    await h.raw.createCollection(c, {
      vectors: { text: { size: 4, distance: 'Cosine' }, alt: { size: 4, distance: 'Dot' } },
    });
    try {
      await h.raw.upsert(c, {
        wait: true,
        points: [
          { id: 1, vector: { text: vec(1), alt: vec(1) }, payload: { [FIELD]: 'acme' } },
          { id: 101, vector: { text: vec(1), alt: vec(1) }, payload: { [FIELD]: 'globex' } },
        ],
      });
      const acme = scopedQdrant(h.raw, { collection: c, tenantField: FIELD }).forTenant(h.acme);
      await acme.deleteVectors({ points: [1, 101], vector: ['alt'] });
      await acme.deleteVectors({ filter: { must: [{ has_id: [101] }] }, vector: ['text'] });
      const [g] = await h.raw.retrieve(c, { ids: [101], with_vector: true });
      expect(Object.keys(g?.vector as object).sort()).toEqual(['alt', 'text']);
      const [a] = await h.raw.retrieve(c, { ids: [1], with_vector: true });
      expect(Object.keys(a?.vector as object)).toEqual(['text']);
      const r = await acme.query({ query: vec(1), using: 'text', limit: 10 });
      expect(r.points.map((p) => p.id)).toEqual([1]);
    } finally {
      await h.raw.deleteCollection(c);
    }
  });
});

describe('DSAR: count, streamed export, delete verified by recount', () => {
  it('exports every own point in pages and deletes only the tenant', async () => {
    const issuerTenant = h.acme;
    // the deprecated TenantData (forTenant(t).data) keeps its shapes; tenantData(t) is in contract.test.ts
    const data = h.scoped.forTenant(issuerTenant).data;
    expect(await data.count()).toBe(ACME_IDS.length);
    h.proxy.clear();
    const exported: unknown[] = [];
    for await (const p of data.export({ pageSize: 2, withVectors: true })) exported.push(p);
    expect((exported as { id: number }[]).map((p) => p.id)).toEqual(ACME_IDS);
    expect((exported as { vector: unknown }[]).every((p) => Array.isArray(p.vector))).toBe(true);
    // streamed: one scroll per page, each scoped
    expect(h.proxy.requests.filter((r) => r.path.endsWith('/points/scroll')).length).toBe(3);
    expect(wireViolations(h.proxy.requests, 'acme')).toEqual([]);
    const globexBefore = await snapshot(h);
    expect(await data.delete()).toEqual({ deleted: ACME_IDS.length, remaining: 0 });
    expect(await data.count()).toBe(0);
    expect(await snapshot(h)).toBe(globexBefore);
    expect((await h.raw.count(h.collection, { exact: true })).count).toBe(GLOBEX_IDS.length);
    // put acme back for the other suites in this file
    await h.raw.upsert(h.collection, {
      wait: true,
      points: ACME_IDS.map((id) => ({ id, vector: vec(id), payload: { [FIELD]: 'acme', title: `acme doc ${id}` } })),
    });
  });
});

describe('bad input: typed error, nothing written', () => {
  beforeAll(() => h.proxy.clear());
  afterEach(() => {
    const sent = [...h.proxy.requests];
    h.proxy.clear();
    expect(writes(sent)).toEqual([]);
  });

  it('forTenant takes only a verified Tenant', () => {
    expect(() => h.scoped.forTenant('acme' as never)).toThrow(expect.objectContaining({ code: 'NOT_A_TENANT' }));
    expect(() => h.scoped.forTenant({ ...h.acme } as never)).toThrow(expect.objectContaining({ code: 'NOT_A_TENANT' }));
    expect(() => h.scoped.provider().forCall({ tenant: { id: 'acme' } } as never)).toThrow(
      expect.objectContaining({ code: 'NOT_A_TENANT' }),
    );
  });

  const bad: [string, string, (a: ReturnType<typeof h.scoped.forTenant>) => Promise<unknown>][] = [
    ['negative id', 'QDRANT_POINT_INVALID', (a) => a.upsert({ points: [{ id: -1, vector: vec(1) }] })],
    ['non-UUID string id', 'QDRANT_POINT_INVALID', (a) => a.upsert({ points: [{ id: 'abc', vector: vec(1) }] })],
    ['missing vector', 'QDRANT_POINT_INVALID', (a) => a.upsert({ points: [{ id: 1 } as never] })],
    [
      'unknown point field',
      'QDRANT_POINT_INVALID',
      (a) => a.upsert({ points: [{ id: 1, vector: vec(1), tenant: 'x' } as never] }),
    ],
    [
      'one bad point in a batch',
      'QDRANT_POINT_INVALID',
      (a) =>
        a.upsert({
          points: [
            { id: 70, vector: vec(1) },
            { id: 71, vector: vec(1), payload: [] as never },
          ],
        }),
    ],
    [
      'NaN in a payload',
      'QDRANT_POINT_INVALID',
      (a) => a.upsert({ points: [{ id: 72, vector: vec(1), payload: { x: Number.NaN } }] }),
    ],
    [
      'a function in a payload',
      'QDRANT_POINT_INVALID',
      (a) => a.upsert({ points: [{ id: 72, vector: vec(1), payload: { f: (() => 1) as never } }] }),
    ],
    [
      'caller update_filter',
      'QDRANT_POINT_INVALID',
      (a) => a.upsert({ points: [{ id: 73, vector: vec(1) }], update_filter: {} } as never),
    ],
    [
      'shard_key on upsert',
      'QDRANT_SHARD_KEY_REFUSED',
      (a) => a.upsert({ points: [{ id: 1, vector: vec(1) }], shard_key: 'x' } as never),
    ],
    [
      'shard_key on a query',
      'QDRANT_SHARD_KEY_REFUSED',
      (a) => a.query({ query: vec(1), shard_key: 'globex' } as never),
    ],
    ['filter that is not an object', 'QDRANT_FILTER_INVALID', (a) => a.scroll({ filter: 'tenant_id=globex' as never })],
    ['filter with an unknown clause', 'QDRANT_FILTER_INVALID', (a) => a.count({ filter: { or: [] } as never })],
    [
      'delete with points and filter',
      'QDRANT_POINT_INVALID',
      (a) => a.delete({ points: [1], filter: { must: [] } } as never),
    ],
    ['delete with an empty filter', 'QDRANT_FILTER_INVALID', (a) => a.delete({ filter: {} })],
    ['delete with no selector', 'QDRANT_POINT_INVALID', (a) => a.delete({} as never)],
    [
      'set payload on the tenant field',
      'QDRANT_TENANT_FIELD',
      (a) => a.setPayload({ points: [1], payload: { [FIELD]: 'acme' } }),
    ],
    ['unknown query variant', 'QDRANT_QUERY_UNSUPPORTED', (a) => a.query({ query: { teleport: 1 } as never })],
    ['update vectors of no points', 'QDRANT_POINT_INVALID', (a) => a.updateVectors({ points: [] })],
    ['retrieve with no ids', 'QDRANT_POINT_INVALID', (a) => a.retrieve({ ids: [] })],
  ];
  it.each(bad)('%s → %s', async (_label, code, run) => {
    const before = (await h.raw.count(h.collection, { exact: true })).count;
    expect(await codeOf(run(h.scoped.forTenant(h.acme)))).toBe(code);
    expect((await h.raw.count(h.collection, { exact: true })).count).toBe(before);
  });

  it('a tenant client cannot be built around forTenant', async () => {
    const { TenantQdrant } = await import('./client.ts');
    const a = h.scoped.forTenant(h.acme);
    const Ctor = a.constructor as unknown as new (...args: unknown[]) => unknown;
    expect(() => new Ctor(Symbol('x'), h.scoped, 'globex', { kind: 'shared', collection: h.collection }, {})).toThrow(
      expect.objectContaining({ code: 'NOT_A_TENANT' }),
    );
    expect(Ctor).toBe(TenantQdrant);
    const index = await import('./index.ts');
    expect(Object.keys(index)).not.toContain('TenantQdrant');
  });

  it('a bad config is refused', () => {
    expect(() => scopedQdrant(h.raw, { collection: '' })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    expect(() => scopedQdrant(h.raw, { collection: 'c', tenantField: 'a.b' })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    expect(() => scopedQdrant({} as never, { collection: 'c' })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
  });
});

describe('upsert update_mode is honoured, never dropped', () => {
  afterAll(async () => {
    await h.scoped.forTenant(h.acme).delete({ points: [80, 81, 82] });
  });

  it('insert_only leaves an existing own point as it was and inserts new ids', async () => {
    const a = h.scoped.forTenant(h.acme);
    await a.upsert({ points: [{ id: 80, vector: vec(1), payload: { v: 'original' } }] });
    await a.upsert({
      update_mode: 'insert_only',
      points: [
        { id: 80, vector: vec(2), payload: { v: 'changed' } },
        { id: 81, vector: vec(1), payload: { v: 'new' } },
      ],
    });
    const got = await a.retrieve({ ids: [80, 81] });
    expect(got.map((p) => p.payload?.v)).toEqual(['original', 'new']);
    // a foreign id is still a conflict: it is taken
    expect(await codeOf(a.upsert({ update_mode: 'insert_only', points: [{ id: 101, vector: vec(1) }] }))).toBe(
      'QDRANT_POINT_ID_CONFLICT',
    );
  });

  it('update_only updates own points and inserts nothing, foreign ids included', async () => {
    const a = h.scoped.forTenant(h.acme);
    const before = await snapshot(h);
    h.proxy.clear();
    await a.upsert({
      update_mode: 'update_only',
      points: [
        { id: 80, vector: vec(3), payload: { v: 'updated' } },
        { id: 82, vector: vec(1), payload: { v: 'never' } },
        { id: 102, vector: vec(1), payload: { v: 'pwned' } },
      ],
    });
    expect((await a.retrieve({ ids: [80, 82] })).map((p) => p.payload?.v)).toEqual(['updated']);
    expect(await snapshot(h)).toBe(before);
    const sent = h.proxy.requests.filter((r) => r.method === 'PUT' && /\/points$/.test(r.path));
    expect(sent.map((r) => (r.body as { update_mode?: unknown }).update_mode)).toEqual(['update_only']);
  });

  it('a bad update_mode or an unknown upsert argument is refused', async () => {
    const a = h.scoped.forTenant(h.acme);
    expect(await codeOf(a.upsert({ points: [{ id: 83, vector: vec(1) }], update_mode: 'merge' as never }))).toBe(
      'QDRANT_POINT_INVALID',
    );
    expect(await codeOf(a.upsert({ points: [{ id: 83, vector: vec(1) }], upsert_mode: 'x' } as never))).toBe(
      'QDRANT_POINT_INVALID',
    );
    expect(await a.retrieve({ ids: [83] })).toEqual([]);
  });
});

describe('placement seam and server checks', () => {
  it('a placement this version does not know is refused', () => {
    const s = scopedQdrant(h.raw, {
      collection: h.collection,
      placement: () => ({ kind: 'schema', collection: h.collection }) as never,
    });
    expect(() => s.forTenant(h.acme)).toThrow(expect.objectContaining({ code: 'QDRANT_PLACEMENT_UNSUPPORTED' }));
  });

  it('dedicated tier: a tenant in its own collection writes and reads there only, the filter still on', async () => {
    const own = `${h.collection}_acme_own`;
    await h.raw.createCollection(own, { vectors: { size: 4, distance: 'Cosine' } });
    try {
      const s = scopedQdrant(h.raw, {
        collection: h.collection,
        tenantField: FIELD,
        placement: dedicatedCollections(h.collection, (id) => (id === 'acme' ? own : undefined)),
      });
      const before = await snapshot(h);
      const acmeBefore = (await h.raw.count(h.collection, { exact: true })).count;
      const a = s.forTenant(h.acme);
      expect(a.placement).toEqual({ tier: 'dedicated', kind: 'collection', collection: own });
      expect(s.forTenant(h.globex).placement).toEqual({ tier: 'shared', kind: 'shared', collection: h.collection });
      await a.upsert({ points: [{ id: 900, vector: vec(1), payload: { note: 'own' } }] });
      // A stray globex point in acme's collection stays invisible to acme.
      await h.raw.upsert(own, { wait: true, points: [{ id: 901, vector: vec(2), payload: { [FIELD]: 'globex' } }] });
      const pts = (await a.scroll({ limit: 10 })).points.map((p) => p.id);
      expect(pts).toEqual([900]);
      expect((await h.raw.retrieve(own, { ids: [900], with_payload: true }))[0]?.payload?.[FIELD]).toBe('acme');
      expect((await h.raw.count(h.collection, { exact: true })).count).toBe(acmeBefore);
      expect(await snapshot(h)).toBe(before);
    } finally {
      await h.raw.deleteCollection(own);
    }
  });

  it('a dedicated placement naming the shared collection, or a bad name, fails closed', () => {
    for (const collection of [h.collection, '../other', '', 'a/b']) {
      const s = scopedQdrant(h.raw, {
        collection: h.collection,
        placement: () => ({ kind: 'collection', collection }),
      });
      expect(() => s.forTenant(h.acme), collection).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    }
  });

  const onVersion = async (version: string, run: (c: QdrantClient) => Promise<void>) => {
    const d = await QdrantProtocolDouble.start({ version });
    try {
      const client = new QdrantClient({ url: d.url, checkCompatibility: false });
      await client.createCollection('c', { vectors: { size: 4, distance: 'Cosine' } });
      await run(client);
    } finally {
      await d.close();
    }
  };

  it('a server without update_filter (before 1.15.4) gets no write, and is told why', async () => {
    await onVersion('1.15.3', async (client) => {
      const a = scopedQdrant(client, { collection: 'c' }).forTenant(h.acme);
      const err = await a.upsert({ points: [{ id: 1, vector: vec(1) }] }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'QDRANT_SERVER_UNSUPPORTED' });
      expect((err as Error).message).toMatch(/1\.15\.4/);
      expect((await client.count('c')).count).toBe(0);
    });
  });

  it('Qdrant 1.15.4 has update_filter: scoped writes work', async () => {
    await onVersion('1.15.4', async (client) => {
      const a = scopedQdrant(client, { collection: 'c' }).forTenant(h.acme);
      await a.upsert({ points: [{ id: 1, vector: vec(1) }] });
      expect(await a.count()).toBe(1);
      // update_mode arrived in 1.17.0: refused here rather than silently ignored
      expect(await codeOf(a.upsert({ points: [{ id: 2, vector: vec(1) }], update_mode: 'insert_only' }))).toBe(
        'QDRANT_SERVER_UNSUPPORTED',
      );
      expect(await a.count()).toBe(1);
    });
  });

  it('before 1.19 (no IDF corpus), a query on an IDF vector is refused; other vectors still work', async () => {
    const d = await QdrantProtocolDouble.start({ version: '1.18.2' });
    try {
      const client = new QdrantClient({ url: d.url, checkCompatibility: false });
      await client.createCollection('s', {
        vectors: { dense: { size: 4, distance: 'Cosine' } },
        sparse_vectors: { bm25: { modifier: 'idf' } },
      });
      await client.upsert('s', {
        wait: true,
        points: [
          { id: 1, vector: { dense: vec(1), bm25: { indices: [1], values: [1] } }, payload: { [FIELD]: 'acme' } },
        ],
      });
      const a = scopedQdrant(client, { collection: 's' }).forTenant(h.acme);
      expect(await codeOf(a.query({ query: { indices: [1], values: [1] }, using: 'bm25' }))).toBe(
        'QDRANT_SERVER_UNSUPPORTED',
      );
      expect(
        await codeOf(
          a.query({ prefetch: { query: { indices: [1], values: [1] }, using: 'bm25' }, query: { fusion: 'rrf' } }),
        ),
      ).toBe('QDRANT_SERVER_UNSUPPORTED');
      expect((await a.query({ query: vec(1), using: 'dense' })).points.map((p) => p.id)).toEqual([1]);
    } finally {
      await d.close();
    }
  });

  it('driver errors are wrapped with a stable code and the cause', async () => {
    const a = scopedQdrant(h.raw, { collection: `${h.collection}_missing` }).forTenant(h.acme);
    const err = await a.count().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QDRANT_REQUEST_FAILED' });
    expect((err as Error).cause).toBeDefined();
  });
});
