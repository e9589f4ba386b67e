/**
 * Escape corpus: acme tries every way we know to read, use, change or delete globex's points.
 * Each case asserts 0 foreign points returned/changed/deleted, and after every case the recording
 * proxy asserts the wire invariant (tenant condition at the top-level must of every filter and
 * prefetch). Runs against QDRANT_URL, testcontainers, or the QdrantProtocolDouble.
 */
import type { Schemas } from '@qdrant/js-client-rest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TenantQdrant } from './client.ts';
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
import { TENANT_PATHS } from './testing/paths.ts';

let h: Harness;
let acme: TenantQdrant;
let globexBefore: string;
const G = (v: string) => ({ key: FIELD, match: { value: v } });

beforeAll(async () => {
  h = await createHarness();
  console.log(
    `[qdrant escape corpus] against ${h.source}, acme's placement: ${JSON.stringify(h.scoped.forTenant(h.acme).placement)}`,
  );
  acme = h.scoped.forTenant(h.acme);
  await h.scoped.ensureTenantIndex(h.collection); // facet needs the index (on acme's collection, whatever the tier)
  h.proxy.clear();
  globexBefore = await snapshot(h);
});

afterEach(async () => {
  // The wire invariant holds for everything acme sent in the test…
  expect(wireViolations(h.proxy.requests, 'acme')).toEqual([]);
  h.proxy.clear();
  // …and globex's points are exactly as seeded.
  expect(await snapshot(h)).toBe(globexBefore);
});

afterAll(async () => {
  await h?.close();
});

async function scrollAll(filter: unknown): Promise<Schemas['Record'][]> {
  return (await acme.scroll({ filter: filter as Schemas['Filter'], limit: 100 })).points;
}

describe('caller filters cannot widen the scope', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['should naming another tenant', { should: [G('globex')] }],
    ['should naming both tenants', { should: [G('globex'), G('acme')] }],
    ['match any with another tenant', { must: [{ key: FIELD, match: { any: ['globex', 'acme'] } }] }],
    ['match except own tenant', { must: [{ key: FIELD, match: { except: ['acme'] } }] }],
    ['must_not own tenant', { must_not: [G('acme')] }],
    ['must_not is_empty on the tenant field', { must_not: [{ is_empty: { key: FIELD } }] }],
    ['double negation in a nested filter', { should: [{ must_not: [G('acme')] }] }],
    ['min_should naming another tenant', { min_should: { conditions: [G('globex'), G('globex')], min_count: 1 } }],
    ['nested filter condition naming another tenant', { must: [{ should: [{ must: [G('globex')] }] }] }],
    [
      'nested array condition on another tenant',
      { must: [{ nested: { key: 'diet', filter: { must: [{ key: 'owner', match: { value: 'globex' } }] } } }] },
    ],
    ['has_id of another tenant', { must: [{ has_id: GLOBEX_IDS }] }],
    ['has_id of both tenants in should', { should: [{ has_id: [...GLOBEX_IDS, 1] }] }],
  ];

  it.each(cases)('scroll: %s', async (_label, filter) => {
    const pts = await scrollAll(filter);
    expect(foreign(pts)).toEqual([]);
  });

  it.each(cases)('count: %s', async (_label, filter) => {
    const n = await acme.count({ filter: filter as Schemas['Filter'] });
    const own = (await scrollAll(filter)).length;
    expect(n).toBe(own); // every counted point is one of acme's
  });

  it.each(cases)('query: %s', async (_label, filter) => {
    const r = await acme.query({ query: vec(1), filter: filter as Schemas['Filter'], limit: 100, with_payload: true });
    expect(foreign(r.points)).toEqual([]);
  });

  it('a "should" filter only narrows: acme still sees its own points', async () => {
    const pts = await scrollAll({ should: [G('globex'), G('acme')] });
    expect(pts.map((p) => p.id).sort()).toEqual(ACME_IDS);
  });

  it('facet over the tenant field sees only the own tenant', async () => {
    const r = await acme.facet({ key: FIELD, filter: { should: [G('globex')] }, limit: 10, exact: true });
    expect(r.hits.map((x) => x.value)).toEqual([]);
    const all = await acme.facet({ key: FIELD, limit: 10, exact: true });
    expect(all.hits).toEqual([{ value: 'acme', count: ACME_IDS.length }]);
  }, 30_000);

  it('search matrix samples only the own tenant', async () => {
    const pairs = await acme.searchMatrixPairs({ sample: 10, limit: 3, filter: { should: [G('globex'), G('acme')] } });
    const ids = new Set(pairs.pairs.flatMap((p) => [p.a, p.b]));
    expect([...ids].filter((id) => GLOBEX_IDS.includes(id as number))).toEqual([]);
    const offsets = await acme.searchMatrixOffsets({ sample: 10, limit: 3 });
    expect(offsets.ids.filter((id) => GLOBEX_IDS.includes(id as number))).toEqual([]);
  });

  it('query groups by the tenant field return only the own group', async () => {
    const r = await acme.queryGroups({ query: vec(1), group_by: FIELD, limit: 10, group_size: 10 });
    expect(r.groups.map((g) => g.id)).toEqual(['acme']);
  });

  it('query batch: every search is scoped', async () => {
    const r = await acme.queryBatch({
      searches: [
        { query: vec(101), filter: { should: [G('globex')] }, limit: 50, with_payload: true },
        { query: vec(102), limit: 50, with_payload: true },
        { prefetch: { query: vec(103), limit: 50 }, query: vec(104), limit: 50, with_payload: true },
      ],
    });
    expect(r.map((x) => foreign(x.points))).toEqual([[], [], []]);
    expect(r[1]?.points.length).toBe(ACME_IDS.length);
  });

  it('scroll starting at a foreign id and facet over another field stay in the tenant', async () => {
    const page = await acme.scroll({ offset: 101, limit: 50 });
    expect(page.points).toEqual([]);
    const titles = await acme.facet({ key: FIELD, filter: { must: [{ has_id: GLOBEX_IDS }] }, exact: true });
    expect(titles.hits).toEqual([]);
  });

  it("a formula query scores only the tenant's candidates", async () => {
    if (h.source === 'double') {
      // The double does not implement formula (it answers 400, surfaced as QDRANT_REQUEST_FAILED);
      // the request must still carry the tenant filter on the prefetch, which afterEach checks.
      expect(
        await codeOf(
          acme.query({
            prefetch: { query: vec(1), limit: 50 },
            query: { formula: { sum: ['$score', { mult: [10, { has_id: GLOBEX_IDS }] }] } },
          }),
        ),
      ).toBe('QDRANT_REQUEST_FAILED');
      return;
    }
    const r = await acme.query({
      prefetch: { query: vec(1), limit: 50 },
      query: { formula: { sum: ['$score', { mult: [10, { has_id: GLOBEX_IDS }] }] } },
      limit: 50,
      with_payload: true,
    });
    expect(foreign(r.points)).toEqual([]);
  });

  it('legacy search with a foreign should', async () => {
    const r = await acme.search({ vector: vec(101), filter: { should: [G('globex')] }, limit: 50, with_payload: true });
    expect(r).toEqual([]);
  });
});

describe('retrieve by id is a filtered scroll', () => {
  it('ids of another tenant come back as if they did not exist', async () => {
    const r = await acme.retrieve({ ids: [101, 1, 102, 999_999] });
    expect(r.map((p) => p.id)).toEqual([1]);
  });

  it('only foreign ids: empty', async () => {
    expect(await acme.retrieve({ ids: GLOBEX_IDS })).toEqual([]);
  });
});

describe("example ids must be the tenant's own", () => {
  const cases: [string, Record<string, unknown>][] = [
    ['nearest by a foreign id', { query: 101 }],
    ['nearest {nearest: id}', { query: { nearest: 102 } }],
    ['recommend positive', { query: { recommend: { positive: [101] } } }],
    ['recommend mixing own and foreign', { query: { recommend: { positive: [1], negative: [103] } } }],
    ['discover target', { query: { discover: { target: 101, context: [{ positive: 1, negative: 2 }] } } }],
    ['discover context pair', { query: { discover: { target: 1, context: [{ positive: 104, negative: 2 }] } } }],
    ['context query', { query: { context: [{ positive: 1, negative: 105 }] } }],
    [
      'example id in a prefetch',
      { prefetch: [{ query: { recommend: { positive: [101] } }, limit: 10 }], query: vec(1) },
    ],
    [
      'example id in a nested prefetch',
      { prefetch: [{ prefetch: [{ query: 101, limit: 10 }], query: vec(2), limit: 10 }], query: { fusion: 'rrf' } },
    ],
  ];
  it.each(cases)('query refused: %s', async (_label, args) => {
    expect(await codeOf(acme.query({ ...args, limit: 10 }))).toBe('QDRANT_POINT_NOT_FOUND');
    expect(writes(h.proxy.requests)).toEqual([]);
    // Only the ownership check went out: no query carrying the foreign id reached the server.
    expect(h.proxy.requests.filter((r) => r.path.endsWith('/points/query'))).toEqual([]);
  });

  it('query groups and batch are checked the same way', async () => {
    expect(
      await codeOf(acme.queryGroups({ query: { recommend: { positive: [101] } }, group_by: 'color', limit: 3 })),
    ).toBe('QDRANT_POINT_NOT_FOUND');
    expect(
      await codeOf(acme.queryBatch({ searches: [{ query: vec(1) }, { query: { recommend: { positive: [102] } } }] })),
    ).toBe('QDRANT_POINT_NOT_FOUND');
  });

  it('a query mixing variants (which a lenient parser might half-read) is refused', async () => {
    expect(await codeOf(acme.query({ query: { fusion: 'rrf', nearest: 101 } as never }))).toBe(
      'QDRANT_QUERY_UNSUPPORTED',
    );
    expect(await codeOf(acme.query({ query: { order_by: 'rank', recommend: { positive: [101] } } as never }))).toBe(
      'QDRANT_QUERY_UNSUPPORTED',
    );
  });

  it('own example ids work, and results stay in the tenant', async () => {
    const r = await acme.query({
      query: { recommend: { positive: [1], negative: [2] } },
      limit: 10,
      with_payload: true,
    });
    expect(r.points.length).toBeGreaterThan(0);
    expect(foreign(r.points)).toEqual([]);
    const near = await acme.query({ query: 3, limit: 10, with_payload: true });
    expect(foreign(near.points)).toEqual([]);
  });
});

describe('lookup_from and with_lookup', () => {
  it('lookup_from a collection that is not configured is refused before any request', async () => {
    const code = await codeOf(
      acme.query({ query: { recommend: { positive: [101] } }, lookup_from: { collection: h.collection } }),
    );
    expect(code).toBe('QDRANT_LOOKUP_REFUSED');
    const code2 = await codeOf(
      acme.query({ prefetch: [{ query: 1, lookup_from: { collection: 'other' }, limit: 5 }], query: vec(1) }),
    );
    expect(code2).toBe('QDRANT_LOOKUP_REFUSED');
    expect(h.proxy.requests).toEqual([]);
  });

  it('with_lookup is refused', async () => {
    expect(await codeOf(acme.queryGroups({ query: vec(1), group_by: 'color', with_lookup: h.collection }))).toBe(
      'QDRANT_LOOKUP_REFUSED',
    );
  });

  it('a configured lookup collection is ownership-checked in that collection', async () => {
    const other = `${h.collection}_lk`;
    await h.raw.createCollection(other, { vectors: { size: 4, distance: 'Cosine' } });
    try {
      await h.raw.upsert(other, {
        wait: true,
        points: [
          { id: 7, vector: vec(3), payload: { [FIELD]: 'globex' } },
          { id: 8, vector: vec(1), payload: { [FIELD]: 'acme' } },
        ],
      });
      const scoped = h.scoped.forTenant(h.acme);
      const withLookup = (await import('./client.ts')).scopedQdrant(h.proxied, {
        ...h.tierOptions, // acme on the tier under test
        tenantField: FIELD,
        lookupCollections: [other],
      });
      const a = withLookup.forTenant(h.acme);
      expect(
        await codeOf(
          a.query({ query: { recommend: { positive: [7] } }, lookup_from: { collection: other }, limit: 5 }),
        ),
      ).toBe('QDRANT_POINT_NOT_FOUND');
      const ok = await a.query({
        query: { recommend: { positive: [8] } },
        lookup_from: { collection: other },
        limit: 10,
        with_payload: true,
      });
      expect(ok.points.length).toBeGreaterThan(0);
      expect(foreign(ok.points)).toEqual([]);
      // the default scope (no lookupCollections) still refuses it
      expect(await codeOf(scoped.query({ query: 8, lookup_from: { collection: other } }))).toBe(
        'QDRANT_LOOKUP_REFUSED',
      );
    } finally {
      await h.raw.deleteCollection(other);
    }
  });
});

describe('prefetches get the tenant filter at every depth', () => {
  it('a prefetch without a filter returns only own points', async () => {
    const r = await acme.query({
      prefetch: [{ query: vec(101), limit: 100 }],
      query: vec(101),
      limit: 100,
      with_payload: true,
    });
    expect(r.points.length).toBe(ACME_IDS.length);
    expect(foreign(r.points)).toEqual([]);
  });

  it('nested prefetches with foreign filters and fusion', async () => {
    const r = await acme.query({
      prefetch: [
        { prefetch: [{ query: vec(102), filter: { should: [G('globex')] }, limit: 50 }], query: vec(103), limit: 50 },
        { query: vec(104), limit: 50 },
      ],
      query: { fusion: 'rrf' },
      limit: 100,
      with_payload: true,
    });
    expect(foreign(r.points)).toEqual([]);
  });
});

describe('writes never touch another tenant', () => {
  it("upsert onto another tenant's id: refused, the foreign point unchanged", async () => {
    expect(await codeOf(acme.upsert({ points: [{ id: 101, vector: vec(9), payload: { title: 'pwned' } }] }))).toBe(
      'QDRANT_POINT_ID_CONFLICT',
    );
  });

  it('a batch mixing a new id and a foreign id: the new point is removed again', async () => {
    expect(
      await codeOf(
        acme.upsert({
          points: [
            { id: 50, vector: vec(1), payload: { title: 'new' } },
            { id: 102, vector: vec(1), payload: { title: 'pwned' } },
          ],
        }),
      ),
    ).toBe('QDRANT_POINT_ID_CONFLICT');
    expect(await acme.retrieve({ ids: [50] })).toEqual([]);
    expect((await h.raw.retrieve(h.collection, { ids: [50] })).length).toBe(0);
  });

  it('a batch mixing an update of an own point and a foreign id changes nothing, own point included', async () => {
    await acme.upsert({ points: [{ id: 51, vector: vec(1), payload: { title: 'original' } }] });
    expect(
      await codeOf(
        acme.upsert({
          points: [
            { id: 51, vector: vec(2), payload: { title: 'changed' } },
            { id: 102, vector: vec(1), payload: { title: 'pwned' } },
          ],
        }),
      ),
    ).toBe('QDRANT_POINT_ID_CONFLICT');
    const [own] = await acme.retrieve({ ids: [51] });
    expect(own?.payload?.title).toBe('original');
    await acme.delete({ points: [51] });
  });

  it('upsert with a UUID id spelled differently than the foreign one is still the same point', async () => {
    const id = '6a2f41a3-c54c-fce8-32d2-0324e1c32e22';
    await h.raw.upsert(h.collection, {
      wait: true,
      points: [{ id, vector: vec(2), payload: { [FIELD]: 'globex', t: 1 } }],
    });
    try {
      const before = await snapshot(h);
      expect(await codeOf(acme.upsert({ points: [{ id: id.toUpperCase(), vector: vec(2), payload: {} }] }))).toBe(
        'QDRANT_POINT_ID_CONFLICT',
      );
      expect(await snapshot(h)).toBe(before);
    } finally {
      await h.raw.delete(h.collection, { wait: true, points: [id] });
    }
  });

  it('delete by ids of another tenant deletes nothing of theirs', async () => {
    await acme.delete({ points: GLOBEX_IDS });
    expect((await h.raw.count(h.collection, { exact: true })).count).toBe(ACME_IDS.length + GLOBEX_IDS.length);
  });

  it('delete by a filter naming another tenant deletes nothing of theirs', async () => {
    await acme.delete({ filter: { must: [{ key: 'rank', range: { gte: 100 } }] } });
    await acme.delete({ filter: { should: [G('globex')] } });
    expect((await h.raw.count(h.collection, { exact: true })).count).toBe(ACME_IDS.length + GLOBEX_IDS.length);
  });

  it('payload and vector operations on foreign ids change nothing', async () => {
    await acme.setPayload({ points: GLOBEX_IDS, payload: { title: 'pwned' } });
    await acme.overwritePayload({ points: GLOBEX_IDS, payload: { title: 'pwned' } });
    await acme.deletePayload({ points: GLOBEX_IDS, keys: ['title'] });
    await acme.clearPayload({ points: GLOBEX_IDS });
    await acme.setPayload({ filter: { should: [G('globex')] }, payload: { title: 'pwned' } });
    await acme.setPayload({ points: GLOBEX_IDS, key: 'diet', payload: { pwned: true } });
    await acme.deletePayload({ points: GLOBEX_IDS, keys: ['title', 'diet'] });
    expect(await codeOf(acme.updateVectors({ points: [{ id: 101, vector: vec(3) }] }))).toBe('QDRANT_POINT_NOT_FOUND');
    expect(writes(h.proxy.requests).filter((r) => r.path.endsWith('/points/vectors'))).toEqual([]);
  });

  it('a payload naming another tenant is refused and nothing is written', async () => {
    expect(await codeOf(acme.upsert({ points: [{ id: 60, vector: vec(1), payload: { [FIELD]: 'globex' } }] }))).toBe(
      'QDRANT_TENANT_FIELD',
    );
    expect(await codeOf(acme.setPayload({ points: [1], payload: { [FIELD]: 'globex' } }))).toBe('QDRANT_TENANT_FIELD');
    expect(await codeOf(acme.setPayload({ points: [1], payload: { x: 1 }, key: FIELD }))).toBe('QDRANT_TENANT_FIELD');
    expect(await codeOf(acme.overwritePayload({ points: [1], payload: { [FIELD]: 'globex' } }))).toBe(
      'QDRANT_TENANT_FIELD',
    );
    expect(await codeOf(acme.deletePayload({ points: [1], keys: [FIELD] }))).toBe('QDRANT_TENANT_FIELD');
    expect(await codeOf(acme.deletePayload({ points: [1], keys: [`${FIELD}[0]`] }))).toBe('QDRANT_TENANT_FIELD');
    expect(writes(h.proxy.requests)).toEqual([]);
  });
});

describe('payload paths: the tenant field however Qdrant spells it', () => {
  it.each(TENANT_PATHS)('setPayload key %s is refused before anything is sent', async (key) => {
    expect(await codeOf(acme.setPayload({ points: [1], key, payload: { x: 1 } }))).toBe('QDRANT_TENANT_FIELD');
    expect(writes(h.proxy.requests)).toEqual([]);
  });

  it.each(TENANT_PATHS)('deletePayload keys [%s] is refused before anything is sent', async (key) => {
    expect(await codeOf(acme.deletePayload({ points: [1], keys: ['title', key] }))).toBe('QDRANT_TENANT_FIELD');
    expect(writes(h.proxy.requests)).toEqual([]);
  });

  it('a quoted "tenant_id" cannot orphan own points, so the DSAR recount still sees them', async () => {
    await codeOf(acme.deletePayload({ points: [1], keys: ['"tenant_id"'] }));
    await codeOf(acme.setPayload({ filter: { must: [{ has_id: [2] }] }, key: '"tenant_id"', payload: { x: 1 } }));
    const [p1, p2] = await h.raw.retrieve(h.collection, { ids: [1, 2], with_payload: true });
    expect([p1?.payload?.[FIELD], p2?.payload?.[FIELD]]).toEqual(['acme', 'acme']);
    expect(await acme.data.count()).toBe(ACME_IDS.length);
  });

  it('a path Qdrant cannot parse is refused as malformed, not sent', async () => {
    expect(await codeOf(acme.deletePayload({ points: [1], keys: ['"tenant_id'] }))).toBe('QDRANT_POINT_INVALID');
    expect(await codeOf(acme.setPayload({ points: [1], key: 'a..b', payload: { x: 1 } }))).toBe('QDRANT_POINT_INVALID');
    expect(h.proxy.requests).toEqual([]);
  });
});

describe('counts are exact: an estimate is computed over every tenant', () => {
  it('count({exact: false}) naming another tenant counts 0, and is sent as exact', async () => {
    expect(await acme.count({ exact: false, filter: { should: [G('globex')] } })).toBe(0);
    expect(
      await acme.count({ exact: false, filter: { must: [{ key: 'color', match: { any: ['red', 'blue'] } }] } }),
    ).toBe((await scrollAll({ must: [{ key: 'color', match: { any: ['red', 'blue'] } }] })).length);
    expect(await acme.count({ exact: false })).toBe(ACME_IDS.length);
    const counts = h.proxy.requests.filter((r) => r.path.endsWith('/points/count'));
    expect(counts.map((r) => (r.body as { exact?: unknown }).exact)).toEqual([true, true, true]);
  });

  it('facet({exact: false}) is sent as exact too', async () => {
    const r = await acme.facet({ key: FIELD, exact: false, filter: { should: [G('globex'), G('acme')] } });
    expect(r.hits).toEqual([{ value: 'acme', count: ACME_IDS.length }]);
  });
});

describe('sparse IDF statistics stay in the tenant', () => {
  const IDF = new Set(['bm25']);
  let coll: string;
  let sp: TenantQdrant;
  const sparse = (terms: number[]) => ({ indices: terms, values: terms.map(() => 1) });
  const seed = async (tenant: string, ids: number[], terms: number[]) => {
    await h.raw.upsert(coll, {
      wait: true,
      points: ids.map((id) => ({ id, vector: { dense: vec(id), bm25: sparse(terms) }, payload: { [FIELD]: tenant } })),
    });
  };
  const score = async () =>
    (await sp.query({ query: sparse([7]), using: 'bm25', limit: 10, with_payload: true })).points.map((p) => [
      p.id,
      p.score,
    ]);

  beforeAll(async () => {
    coll = `${h.collection}_idf`;
    await h.raw.createCollection(coll, {
      vectors: { dense: { size: 4, distance: 'Cosine' } },
      sparse_vectors: { bm25: { modifier: 'idf' } },
    });
    await seed('acme', [1, 2], [7, 8]);
    await seed('globex', [101], [7]);
    const { scopedQdrant } = await import('./client.ts');
    sp = scopedQdrant(h.proxied, { collection: coll, tenantField: FIELD }).forTenant(h.acme);
  });
  afterEach(() => {
    expect(wireViolations(h.proxy.requests, 'acme', FIELD, IDF)).toEqual([]);
  });
  afterAll(async () => {
    await h.raw.deleteCollection(coll).catch(() => undefined);
  });

  const refused: [string, Record<string, unknown>][] = [
    ['"global" on the request', { query: sparse([7]), using: 'bm25', params: { idf: 'global' } }],
    ['a corpus on the request', { query: sparse([7]), using: 'bm25', params: { idf: { corpus: { must: [] } } } }],
    [
      'a corpus naming another tenant in a prefetch',
      {
        prefetch: [{ query: sparse([7]), using: 'bm25', params: { idf: { corpus: { must: [G('globex')] } } } }],
        query: { fusion: 'rrf' },
      },
    ],
    [
      'a corpus in a nested prefetch',
      {
        prefetch: { prefetch: [{ query: sparse([7]), using: 'bm25', params: { idf: { corpus: {} } } }], query: vec(1) },
        query: vec(1),
        using: 'dense',
      },
    ],
  ];
  it.each(refused)('a caller idf is refused: %s', async (_label, args) => {
    expect(await codeOf(sp.query(args as never))).toBe('QDRANT_IDF_REFUSED');
    expect(await codeOf(sp.queryBatch({ searches: [{ query: vec(1), using: 'dense' }, args as never] }))).toBe(
      'QDRANT_IDF_REFUSED',
    );
    expect(h.proxy.requests.filter((r) => r.path.includes('/points/query'))).toEqual([]);
  });

  it("acme's scores do not move when globex adds documents with the same term", async () => {
    const before = await score();
    expect(before.map(([id]) => id)).toEqual([1, 2]);
    await seed(
      'globex',
      Array.from({ length: 20 }, (_, i) => 200 + i),
      [7],
    );
    try {
      expect(await score()).toEqual(before);
      // through a prefetch and a batch as well
      const viaPrefetch = await sp.query({
        prefetch: [{ query: sparse([7]), using: 'bm25', limit: 10 }],
        query: { fusion: 'rrf' },
        limit: 10,
      });
      expect(viaPrefetch.points.map((p) => p.id).sort()).toEqual([1, 2]);
      const [batched] = await sp.queryBatch({ searches: [{ query: sparse([7]), using: 'bm25', limit: 10 }] });
      expect(batched?.points.map((p) => [p.id, p.score])).toEqual(before);
    } finally {
      await h.raw.delete(coll, { wait: true, points: Array.from({ length: 20 }, (_, i) => 200 + i) });
    }
  });

  it('the search matrix on an IDF vector is refused (it takes no corpus)', async () => {
    expect(await codeOf(sp.searchMatrixPairs({ using: 'bm25', sample: 5, limit: 2 }))).toBe('QDRANT_IDF_REFUSED');
    expect(h.proxy.requests.filter((r) => r.path.includes('/matrix/'))).toEqual([]);
  });
});

describe('the wire check itself can fail', () => {
  it('flags an unscoped request and a prefetch without the tenant', () => {
    const bad = wireViolations(
      [
        { method: 'POST', path: '/collections/c/points/scroll', query: {}, body: { limit: 10 }, status: 200 },
        {
          method: 'POST',
          path: '/collections/c/points/query',
          query: {},
          body: { filter: { must: [G('acme')] }, prefetch: [{ query: [1, 0, 0, 0] }] },
          status: 200,
        },
        { method: 'POST', path: '/collections/c/points', query: {}, body: { ids: [1] }, status: 200 },
        {
          method: 'POST',
          path: '/collections/c/points/count',
          query: {},
          body: { filter: { should: [G('acme')] } },
          status: 200,
        },
      ],
      'acme',
    );
    expect(bad).toHaveLength(5); // the count is also not exact
  });

  it('flags estimates, tenant-field paths and a caller IDF corpus', () => {
    const req = (method: string, path: string, body: unknown) => ({ method, path, query: {}, body, status: 200 });
    const f = { must: [G('acme')] };
    const bad = wireViolations(
      [
        req('POST', '/collections/c/points/count', { filter: f, exact: false }),
        req('POST', '/collections/c/facet', { key: 'x', filter: f }),
        req('POST', '/collections/c/points/payload/delete', { filter: f, keys: ['title', '"tenant_id"'] }),
        req('POST', '/collections/c/points/payload', { filter: f, key: 'tenant_id[]', payload: { a: 1 } }),
        req('POST', '/collections/c/points/payload', { filter: f, payload: { [FIELD]: 'acme' } }),
        req('PUT', '/collections/c/points/payload', { filter: f, payload: { a: 1 } }),
        req('POST', '/collections/c/points/query', { filter: f, using: 'bm25', params: { idf: 'global' }, query: [1] }),
        req('POST', '/collections/c/points/query', {
          filter: f,
          prefetch: [{ filter: f, using: 'bm25', query: { indices: [1], values: [1] } }],
        }),
      ],
      'acme',
      FIELD,
      new Set(['bm25']),
    );
    expect(bad).toHaveLength(8);
  });
});
