/**
 * Unit tests of the QdrantProtocolDouble itself: it is driven over HTTP with the paths and bodies
 * @qdrant/js-client-rest 1.19 sends, and its filter semantics are checked against the examples in
 * Qdrant's filtering documentation. These run against the double only (they test the double); the
 * @tenantscope/qdrant suites drive it with the official client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QdrantProtocolDouble } from './qdrant.ts';

let double: QdrantProtocolDouble;

/** The REST calls the official client makes, as fetch; non-2xx throws with the status in the message. */
// biome-ignore lint/suspicious/noExplicitAny: JSON from the wire, asserted by the tests.
async function call(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${double.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as { result?: unknown; status: unknown };
  if (res.status !== 200) throw new Error(`${res.status} ${JSON.stringify(json.status)}`);
  return json.result;
}
const client = {
  facet: (c: string, b: unknown) => call('POST', `/collections/${c}/facet`, b),
  updateVectors: (c: string, b: unknown) => call('PUT', `/collections/${c}/points/vectors?wait=true`, b),
  deletePoints: (c: string, b: unknown) => call('POST', `/collections/${c}/points/delete?wait=true`, b),
  createCollection: (c: string, b: unknown) => call('PUT', `/collections/${c}`, b),
  upsert: (c: string, b: unknown) => call('PUT', `/collections/${c}/points?wait=true`, b),
  retrieve: (c: string, b: unknown) => call('POST', `/collections/${c}/points`, b),
  scroll: (c: string, b: unknown) => call('POST', `/collections/${c}/points/scroll`, b),
  query: (c: string, b: unknown) => call('POST', `/collections/${c}/points/query`, b),
};
const C = 'cities';

// The payloads of Qdrant's filtering docs, plus a few for arrays, nesting and empties.
const points = [
  { id: 1, city: 'London', color: 'green' },
  { id: 2, city: 'London', color: 'red' },
  { id: 3, city: 'London', color: 'blue' },
  { id: 4, city: 'Berlin', color: 'red' },
  { id: 5, city: 'Moscow', color: 'green' },
  { id: 6, city: 'Moscow', color: 'blue' },
];

async function ids(filter: Record<string, unknown>): Promise<number[]> {
  const r = await client.scroll(C, { filter, limit: 100, with_payload: false });
  return r.points.map((p: { id: number }) => p.id);
}

beforeAll(async () => {
  double = await QdrantProtocolDouble.start();
  await client.createCollection(C, { vectors: { size: 2, distance: 'Cosine' } });
  await client.upsert(C, {
    points: points.map(({ id, ...payload }) => ({ id, vector: [id, 1], payload })),
  });
  await client.upsert(C, {
    points: [
      {
        id: 10,
        vector: [1, 0],
        payload: {
          diet: [
            { food: 'leaves', likes: false },
            { food: 'meat', likes: true },
          ],
        },
      },
      {
        id: 11,
        vector: [0, 1],
        payload: {
          diet: [
            { food: 'leaves', likes: true },
            { food: 'meat', likes: false },
          ],
        },
      },
      { id: 12, vector: [1, 1], payload: { tags: ['a', 'b'], price: 10, parts: [], packaging: null } },
      { id: 13, vector: [1, 2], payload: { tags: [], price: 20.5, not_null: [null] } },
    ],
  });
});

afterAll(async () => {
  await double?.close();
});

describe('QdrantProtocolDouble filter semantics (Qdrant filtering docs)', () => {
  it('must: all conditions', async () => {
    expect(
      await ids({
        must: [
          { key: 'city', match: { value: 'London' } },
          { key: 'color', match: { value: 'red' } },
        ],
      }),
    ).toEqual([2]);
  });

  it('should: at least one condition', async () => {
    expect(
      await ids({
        should: [
          { key: 'city', match: { value: 'London' } },
          { key: 'color', match: { value: 'red' } },
        ],
      }),
    ).toEqual([1, 2, 3, 4]);
  });

  it('must_not: none of the conditions', async () => {
    const got = await ids({
      must_not: [
        { key: 'city', match: { value: 'London' } },
        { key: 'color', match: { value: 'red' } },
      ],
    });
    expect(got).toEqual([5, 6, 10, 11, 12, 13]);
  });

  it('clauses combine: must and must_not', async () => {
    expect(
      await ids({
        must: [{ key: 'city', match: { value: 'London' } }],
        must_not: [{ key: 'color', match: { value: 'red' } }],
      }),
    ).toEqual([1, 3]);
  });

  it('a filter nested as a condition', async () => {
    expect(
      await ids({
        must_not: [
          {
            must: [
              { key: 'city', match: { value: 'London' } },
              { key: 'color', match: { value: 'red' } },
            ],
          },
        ],
        should: [{ key: 'city', match: { any: ['London', 'Moscow'] } }],
      }),
    ).toEqual([1, 3, 5, 6]);
  });

  it('a single condition may stand in for a list', async () => {
    expect(await ids({ must: { key: 'city', match: { value: 'Berlin' } } })).toEqual([4]);
  });

  it('min_should counts matching conditions', async () => {
    expect(
      await ids({
        min_should: {
          conditions: [
            { key: 'city', match: { value: 'London' } },
            { key: 'color', match: { value: 'green' } },
          ],
          min_count: 2,
        },
      }),
    ).toEqual([1]);
  });

  it('should: [] matches nothing, must: [] matches everything', async () => {
    expect(await ids({ should: [] })).toEqual([]);
    expect((await ids({ must: [] })).length).toBe(10);
  });

  it('match any and except', async () => {
    expect(await ids({ must: [{ key: 'color', match: { any: ['black', 'yellow', 'red'] } }] })).toEqual([2, 4]);
    // Qdrant 1.19: a field condition on a missing field is false, match.except included.
    expect(await ids({ must: [{ key: 'color', match: { except: ['green', 'blue'] } }] })).toEqual([2, 4]);
  });

  it('match on an array payload: any element', async () => {
    expect(await ids({ must: [{ key: 'tags', match: { value: 'b' } }] })).toEqual([12]);
    // except on an array: at least one element not in the list
    expect(await ids({ must: [{ key: 'tags', match: { except: ['a'] } }] })).toContain(12);
    expect(await ids({ must: [{ key: 'tags', match: { except: ['a', 'b'] } }] })).not.toContain(12);
  });

  it('match value is type-strict (keyword vs integer)', async () => {
    expect(await ids({ must: [{ key: 'price', match: { value: '10' } }] })).toEqual([]);
    expect(await ids({ must: [{ key: 'price', match: { value: 10 } }] })).toEqual([12]);
  });

  it('range on integers and floats', async () => {
    expect(await ids({ must: [{ key: 'price', range: { gte: 10, lt: 20.5 } }] })).toEqual([12]);
    expect(await ids({ must: [{ key: 'price', range: { gt: 10 } }] })).toEqual([13]);
  });

  it('is_empty: missing, null or []; [null] is not empty', async () => {
    const empty = await ids({ must: [{ is_empty: { key: 'parts' } }] });
    expect(empty).toContain(12); // []
    expect(empty).toContain(1); // missing
    expect(await ids({ must: [{ is_empty: { key: 'not_null' } }] })).not.toContain(13);
    expect(await ids({ must: [{ is_empty: { key: 'packaging' } }] })).toContain(12);
  });

  it('is_null: only a stored null', async () => {
    expect(await ids({ must: [{ is_null: { key: 'packaging' } }] })).toEqual([12]);
  });

  it('has_id', async () => {
    expect(await ids({ must: [{ has_id: [2, 4, 999] }] })).toEqual([2, 4]);
    expect(await ids({ must_not: [{ has_id: [1, 2, 3, 4, 5, 6] }] })).toEqual([10, 11, 12, 13]);
  });

  it('array paths without nested match across elements; nested matches per element', async () => {
    const flat = await ids({
      must: [
        { key: 'diet[].food', match: { value: 'meat' } },
        { key: 'diet[].likes', match: { value: true } },
      ],
    });
    expect(flat).toEqual([10, 11]);
    const nested = await ids({
      must: [
        {
          nested: {
            key: 'diet',
            filter: {
              must: [
                { key: 'food', match: { value: 'meat' } },
                { key: 'likes', match: { value: true } },
              ],
            },
          },
        },
      ],
    });
    expect(nested).toEqual([10]);
  });
});

describe('QdrantProtocolDouble is strict', () => {
  const status = async (p: Promise<unknown>) => {
    try {
      await p;
      return 200;
    } catch (err) {
      return Number(/(\d{3})/.exec(String((err as Error).message))?.[1] ?? 0);
    }
  };

  it('answers 400 to conditions and fields it does not implement', async () => {
    expect(await status(client.scroll(C, { filter: { must: [{ key: 'city', match: { text: 'Lon' } }] } }))).toBe(400);
    expect(
      await status(
        client.scroll(C, { filter: { must: [{ key: 'loc', geo_radius: { center: { lat: 0, lon: 0 }, radius: 1 } }] } }),
      ),
    ).toBe(400);
    expect(await status(client.scroll(C, { filter: { must: [{ key: 'tags', values_count: { gt: 1 } }] } }))).toBe(400);
    expect(await status(client.scroll(C, { order_by: 'price' }))).toBe(400);
    expect(await status(client.scroll(C, { filter: { must: [{ frobnicate: 1 }] } }))).toBe(400);
    expect(await status(client.scroll(C, { filter: { mustt: [] } }))).toBe(400);
    expect(await status(client.query(C, { query: { formula: { sum: [1] } } }))).toBe(400);
  });

  it('answers 404 to an unknown collection and 400 to min_count 0 and a bad path', async () => {
    expect(await status(client.scroll('nope', {}))).toBe(404);
    expect(
      await status(client.scroll(C, { filter: { min_should: { conditions: [{ has_id: [1] }], min_count: 0 } } })),
    ).toBe(400);
    expect(await status(client.scroll(C, { filter: { must: [{ key: '"city', match: { value: 'x' } }] } }))).toBe(400);
  });

  it('wraps results in the Qdrant envelope', async () => {
    const res = await fetch(`${double.url}/collections/${C}/points/count`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ exact: true }),
    });
    const body = (await res.json()) as { result: { count: number }; status: string; time: number };
    expect(body.status).toBe('ok');
    expect(body.result.count).toBe(10);
    expect(typeof body.time).toBe('number');
    const bad = await fetch(`${double.url}/collections/${C}/points/count`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filter: { must: [{ key: 'x', geo_radius: {} }] } }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { status: { error: string } }).status.error).toMatch(/does not implement/);
  });

  it('honours update_filter on upsert: a non-matching existing point keeps its state', async () => {
    await client.upsert(C, {
      points: [{ id: 4, vector: [9, 9], payload: { city: 'Paris' } }],
      update_filter: { must: [{ key: 'city', match: { value: 'London' } }] },
    });
    const [p] = await client.retrieve(C, { ids: [4], with_payload: true });
    expect(p?.payload).toEqual({ city: 'Berlin', color: 'red' });
    await client.upsert(C, {
      points: [{ id: 2, vector: [2, 1], payload: { city: 'London', color: 'pink' } }],
      update_filter: { must: [{ key: 'city', match: { value: 'London' } }] },
    });
    const [q] = await client.retrieve(C, { ids: [2], with_payload: true });
    expect(q?.payload).toEqual({ city: 'London', color: 'pink' });
  });

  it('scores nearest by cosine and recommends away from examples', async () => {
    const r = await client.query(C, { query: [1, 0], limit: 1, filter: { must: [{ has_id: [10, 11] }] } });
    expect(r.points.map((p: { id: number }) => p.id)).toEqual([10]);
    const rec = await client.query(C, {
      query: { recommend: { positive: [10] } },
      filter: { must: [{ has_id: [10, 11, 12] }] },
      limit: 5,
    });
    expect(rec.points.map((p: { id: number }) => p.id)).toEqual([12, 11]); // the example itself is excluded
  });

  it('pages a scroll by id with next_page_offset', async () => {
    const first = await client.scroll(C, { limit: 4, with_payload: false });
    expect(first.points.map((p: { id: number }) => p.id)).toEqual([1, 2, 3, 4]);
    expect(first.next_page_offset).toBe(5);
    const next = await client.scroll(C, { limit: 4, offset: first.next_page_offset, with_payload: false });
    expect(next.points.map((p: { id: number }) => p.id)).toEqual([5, 6, 10, 11]);
  });

  it('honours update_filter on update_vectors and 404s an unknown point', async () => {
    await client.updateVectors(C, {
      points: [{ id: 5, vector: [0, 9] }],
      update_filter: { must: [{ key: 'city', match: { value: 'London' } }] },
    });
    const [p] = await client.retrieve(C, { ids: [5], with_vector: true });
    // unchanged (Moscow is not London): still the normalised [5, 1] it was stored with
    expect(p.vector[0]).toBeCloseTo(5 / Math.hypot(5, 1), 12);
    expect(p.vector[1]).toBeCloseTo(1 / Math.hypot(5, 1), 12);
    await client.updateVectors(C, { points: [{ id: 5, vector: [0, 9] }] });
    const [q] = await client.retrieve(C, { ids: [5], with_vector: true });
    expect(q.vector).toEqual([0, 1]);
    expect(await status(client.updateVectors(C, { points: [{ id: 999, vector: [1, 0] }] }))).toBe(404);
  });

  it('facet needs a payload index, counts values of matching points', async () => {
    expect(await status(client.facet(C, { key: 'city' }))).toBe(400);
    await call('PUT', `/collections/${C}/index?wait=true`, { field_name: 'city', field_schema: 'keyword' });
    const r = await client.facet(C, {
      key: 'city',
      filter: { must_not: [{ key: 'color', match: { value: 'blue' } }] },
    });
    expect(r.hits).toEqual([
      { value: 'London', count: 2 },
      { value: 'Berlin', count: 1 },
      { value: 'Moscow', count: 1 },
    ]);
  });

  it('answers 400 to an unknown query parameter or body field', async () => {
    expect(await status(call('POST', `/collections/${C}/points/count?frobnicate=1`, {}))).toBe(400);
    expect(await status(call('POST', `/collections/${C}/points/count`, { filtre: {} }))).toBe(400);
    expect(await status(client.upsert(C, { points: [{ id: 1, vector: [1, 0], extra: 1 }] }))).toBe(400);
    expect(await status(client.upsert(C, { points: [{ id: 1, vector: [1, 0, 0] }] }))).toBe(400);
  });

  it('deletes by filter', async () => {
    await client.deletePoints(C, { filter: { must: [{ key: 'city', match: { value: 'Moscow' } }] } });
    expect(await ids({ must: [{ key: 'city', match: { value: 'Moscow' } }] })).toEqual([]);
  });
});

describe('QdrantProtocolDouble: Qdrant 1.19 behaviours the isolation suites depend on', () => {
  const D = 'fidelity';
  const count = (b: unknown) => call('POST', `/collections/${D}/points/count`, b).then((r) => r.count as number);
  const setPayload = (b: unknown) => call('POST', `/collections/${D}/points/payload?wait=true`, b);
  const deletePayload = (b: unknown) => call('POST', `/collections/${D}/points/payload/delete?wait=true`, b);
  const payloadOf = async (id: number) => (await client.retrieve(D, { ids: [id], with_payload: true }))[0].payload;
  const idsIn = async (filter: unknown) =>
    (await client.scroll(D, { filter, limit: 100, with_payload: false })).points.map((p: { id: number }) => p.id);
  const T = (t: string) => ({ key: 'tenant_id', match: { value: t } });

  beforeAll(async () => {
    await client.createCollection(D, {
      vectors: { dense: { size: 2, distance: 'Dot' } },
      sparse_vectors: { bm25: { modifier: 'idf' }, plain: {} },
    });
    await call('PUT', `/collections/${D}/index?wait=true`, {
      field_name: 'tenant_id',
      field_schema: { type: 'keyword', is_tenant: true },
    });
    await call('PUT', `/collections/${D}/index?wait=true`, { field_name: 'flag', field_schema: 'keyword' });
    const pt = (id: number, tenant: string, terms: number[], payload: Record<string, unknown> = {}) => ({
      id,
      vector: { dense: [1, id], bm25: { indices: terms, values: terms.map(() => 1) } },
      payload: { tenant_id: tenant, ...payload },
    });
    await client.upsert(D, {
      points: [
        pt(1, 'acme', [1, 2], { 'a.b': 'dotted', flag: [null], loose: [null], list: [1, null], none: [] }),
        pt(2, 'acme', [2, 3], { diet: [{ food: 'x' }] }),
        pt(101, 'globex', [1]),
        pt(102, 'globex', [1]),
        pt(103, 'globex', [1]),
        pt(104, 'globex', [1]),
      ],
    });
  });

  it('count with exact: false is an estimate from statistics over every tenant', async () => {
    const filter = { must: [T('acme'), { should: [T('globex')] }] };
    expect(await count({ filter, exact: true })).toBe(0);
    const estimate = await count({ filter, exact: false });
    expect(estimate).toBeGreaterThan(0); // the leak the scoped client closes by always sending exact: true
    // Qdrant's formula: total × P(acme) × P(globex), from the index counts of each tenant.
    expect(estimate).toBe(Math.round(6 * (2 / 6) * (4 / 6)));
    const more = [105, 106, 107, 108, 109];
    await client.upsert(D, {
      points: more.map((id) => ({ id, vector: { dense: [1, 1] }, payload: { tenant_id: 'globex' } })),
    });
    try {
      // acme's own answer moves with globex's point count
      expect(await count({ filter, exact: false })).toBe(Math.round(11 * (2 / 11) * (9 / 11)));
    } finally {
      await client.deletePoints(D, { points: more });
    }
  });

  it('quoted keys are one key: filters, set_payload and delete_payload', async () => {
    expect(await idsIn({ must: [{ key: '"a.b"', match: { value: 'dotted' } }] })).toEqual([1]);
    expect(await idsIn({ must: [{ key: '"tenant_id"', match: { value: 'acme' } }] })).toEqual([1, 2]);
    await setPayload({ points: [2], key: '"tenant_id"', payload: { x: 1 } });
    expect((await payloadOf(2)).tenant_id).toEqual({ x: 1 }); // the tenant field is gone: point 2 is orphaned
    await deletePayload({ points: [2], keys: ['"tenant_id"'] });
    expect(Object.hasOwn(await payloadOf(2), 'tenant_id')).toBe(false);
    await setPayload({ points: [2], payload: { tenant_id: 'acme' } });
    await setPayload({ points: [2], payload: { tenant_id: null } }); // null removes the key, as in Qdrant
    expect(Object.hasOwn(await payloadOf(2), 'tenant_id')).toBe(false);
    await setPayload({ points: [2], payload: { tenant_id: 'acme' } });
  });

  it('points and filter together: points apply, the filter is ignored', async () => {
    await setPayload({ points: [101], filter: { must: [T('acme')] }, payload: { marked: true } });
    expect((await payloadOf(101)).marked).toBe(true);
    expect((await payloadOf(1)).marked).toBeUndefined();
    await deletePayload({ points: [101], filter: { must: [T('nobody')] }, keys: ['marked'] });
    expect((await payloadOf(101)).marked).toBeUndefined();
  });

  it('is_null and is_empty on arrays, field-level and condition-level', async () => {
    expect(await idsIn({ must: [{ is_null: { key: 'loose' } }] })).toEqual([]); // [null], no index
    expect(await idsIn({ must: [{ is_null: { key: 'flag' } }] })).toEqual([1]); // [null], null index
    expect(await idsIn({ must: [{ key: 'loose', is_null: true }] })).toEqual([1]);
    expect(await idsIn({ must: [{ key: 'list', is_null: true }] })).toEqual([1]);
    expect(await idsIn({ must: [{ key: 'loose', is_null: false }] })).not.toContain(1);
    expect(await idsIn({ must: [{ key: 'none', is_empty: true }] })).toEqual([1, 2, 101, 102, 103, 104]);
    expect(await idsIn({ must: [{ key: 'none', is_empty: false }] })).toEqual([]);
    expect(await idsIn({ must: [{ key: 'list', is_empty: false }] })).toEqual([1]);
  });

  it('match.except on a missing field does not match', async () => {
    expect(await idsIn({ must: [{ key: 'nowhere', match: { except: ['x'] } }] })).toEqual([]);
  });

  it('has_id and has_vector inside nested match nothing', async () => {
    const nested = (c: unknown) => ({ must: [{ nested: { key: 'diet', filter: { must: [c] } } }] });
    expect(await idsIn(nested({ has_id: [2] }))).toEqual([]);
    expect(await idsIn(nested({ has_vector: 'dense' }))).toEqual([]);
    expect(await idsIn(nested({ key: 'food', match: { value: 'x' } }))).toEqual([2]);
  });

  it('sparse IDF: the default corpus is every tenant, a corpus filter narrows it', async () => {
    const q = (params?: unknown) =>
      client
        .query(D, { query: { indices: [1], values: [1] }, using: 'bm25', filter: { must: [T('acme')] }, params })
        .then((r: { points: { id: number; score: number }[] }) => r.points);
    const global = await q();
    const corpus = await q({ idf: { corpus: { must: [T('acme')] } } });
    expect(global.map((p) => p.id)).toEqual([1]);
    // term 1: held by 5 of 6 points globally, 1 of 2 in acme's corpus
    expect(global[0]!.score).toBeCloseTo(Math.log((6 - 5 + 0.5) / (5 + 0.5) + 1), 6);
    expect(corpus[0]!.score).toBeCloseTo(Math.log((2 - 1 + 0.5) / (1 + 0.5) + 1), 6);
    expect((await q({ idf: 'global' }))[0]!.score).toBe(global[0]!.score);
    const bad = await call('POST', `/collections/${D}/points/query`, {
      query: [1, 1],
      using: 'dense',
      params: { idf: 'global' },
    }).catch((e: Error) => e.message);
    expect(String(bad)).toMatch(/^400 .*idf/);
  });
});

describe('QdrantProtocolDouble: user-defined sharding (sharding_method custom), as Qdrant routes it', () => {
  const S = 'sharded';
  const upsertTo = (key: unknown, id: number, tenant: string) =>
    client.upsert(S, { shard_key: key, points: [{ id, vector: [1, id], payload: { tenant } }] });
  const scrollIds = async (body: Record<string, unknown>) =>
    (await client.scroll(S, { limit: 100, with_payload: false, ...body })).points.map((p: { id: number }) => p.id);

  beforeAll(async () => {
    await client.createCollection(S, { vectors: { size: 2, distance: 'Cosine' }, sharding_method: 'custom' });
    for (const key of ['acme', 'globex']) await call('PUT', `/collections/${S}/shards`, { shard_key: key });
    await upsertTo('acme', 1, 'acme');
    await upsertTo('globex', 2, 'globex');
  });

  it('a read with a shard_key sees only that shard key; without one, every shard key', async () => {
    expect(await scrollIds({ shard_key: 'acme' })).toEqual([1]);
    expect(await scrollIds({ shard_key: 'globex' })).toEqual([2]);
    expect(await scrollIds({})).toEqual([1, 2]);
    expect(await scrollIds({ shard_key: ['acme', 'globex'] })).toEqual([1, 2]);
    expect((await call('POST', `/collections/${S}/points/count`, { shard_key: 'acme' })).count).toBe(1);
    const q = await client.query(S, { shard_key: 'acme', query: [1, 2], limit: 10 });
    expect(q.points.map((p: { id: number }) => p.id)).toEqual([1]);
    expect(await client.retrieve(S, { shard_key: 'acme', ids: [1, 2] })).toHaveLength(1);
  });

  it('a write must name one existing shard key; it touches only that shard key', async () => {
    await expect(client.upsert(S, { points: [{ id: 3, vector: [1, 1] }] })).rejects.toThrow(/400.*not specified/);
    await expect(upsertTo('initech', 3, 'initech')).rejects.toThrow(/400.*not found/);
    await expect(upsertTo(['acme', 'globex'], 3, 'x')).rejects.toThrow(/400/);
    await expect(client.deletePoints(S, { filter: { must: [] } })).rejects.toThrow(/400.*not specified/);
    // delete everything under acme's shard key: globex's point stays
    await client.deletePoints(S, { shard_key: 'acme', filter: { must: [] } });
    expect(await scrollIds({})).toEqual([2]);
    await upsertTo('acme', 1, 'acme');
  });

  it('ids are unique per shard key only; the double refuses a read merging duplicate ids', async () => {
    await upsertTo('acme', 2, 'acme'); // id 2 also lives under globex
    expect(await scrollIds({ shard_key: 'acme' })).toEqual([1, 2]);
    const globex = await client.retrieve(S, { shard_key: 'globex', ids: [2], with_payload: true });
    expect(globex[0].payload).toEqual({ tenant: 'globex' });
    await expect(scrollIds({})).rejects.toThrow(/400.*same point id/);
    await client.deletePoints(S, { shard_key: 'acme', points: [2] });
    expect(await scrollIds({})).toEqual([1, 2]);
  });

  it('shard keys: created once, only on custom collections, dropped with their points; info says custom', async () => {
    await expect(call('PUT', `/collections/${S}/shards`, { shard_key: 'acme' })).rejects.toThrow(/400.*exists/);
    await expect(call('PUT', `/collections/${C}/shards`, { shard_key: 'acme' })).rejects.toThrow(/400/);
    await expect(client.scroll(C, { shard_key: 'acme' })).rejects.toThrow(/400.*not found/);
    expect((await call('GET', `/collections/${S}`)).config.params.sharding_method).toBe('custom');
    expect((await call('GET', `/collections/${S}`)).points_count).toBe(2);
    await call('PUT', `/collections/${S}/shards`, { shard_key: 'initech' });
    expect((await call('GET', `/collections/${S}/shards`)).shard_keys.map((k: { key: unknown }) => k.key)).toEqual([
      'acme',
      'globex',
      'initech',
    ]);
    expect((await call('GET', `/collections/${C}/shards`)).shard_keys).toBeNull();
    await upsertTo('initech', 9, 'initech');
    await call('POST', `/collections/${S}/shards/delete`, { shard_key: 'initech' });
    expect(await scrollIds({})).toEqual([1, 2]);
    await expect(scrollIds({ shard_key: 'initech' })).rejects.toThrow(/400.*not found/);
  });
});
