import { describe, expect, it } from 'vitest';
import {
  checkNotTenantPath,
  checkPayload,
  checkPointId,
  type ExampleIds,
  forceIdfCorpus,
  idKey,
  scopeFilter,
  scopeQueryRequest,
  tenantCondition,
  vectorsUsed,
} from './scope.ts';

const cond = tenantCondition('tenant_id', 'acme');
const scope = (req: Record<string, unknown>, lookup: string[] = []) => {
  const examples: ExampleIds = { byCollection: new Map() };
  const out = scopeQueryRequest(req, cond, new Set(lookup), examples);
  return { out, examples: Object.fromEntries(examples.byCollection) };
};

describe('scopeFilter', () => {
  it('puts the tenant first in must and keeps the caller filter whole beside it', () => {
    const caller = { should: [{ key: 'tenant_id', match: { value: 'globex' } }], must_not: [{ has_id: [1] }] };
    expect(scopeFilter(cond, caller)).toEqual({ must: [cond, caller] });
    expect(scopeFilter(cond, undefined)).toEqual({ must: [cond] });
    expect(scopeFilter(cond, {})).toEqual({ must: [cond] });
    expect(scopeFilter(cond, null, { has_id: [1, 2] })).toEqual({ must: [cond, { has_id: [1, 2] }] });
  });

  it('refuses shapes that are not a Filter', () => {
    for (const bad of ['x', 1, [], { or: [] }, { must: [{ key: 'a', match: { value: Number.NaN } }] }]) {
      expect(() => scopeFilter(cond, bad)).toThrow();
    }
  });
});

describe('scopeQueryRequest', () => {
  it('scopes every prefetch at every depth, even those without a filter', () => {
    const { out } = scope({
      prefetch: [
        { prefetch: { query: [1, 0] }, query: [0, 1] },
        { query: [1, 1], filter: { must: [] } },
      ],
      query: { fusion: 'rrf' },
    });
    const o = out as { filter: unknown; prefetch: { filter: unknown; prefetch?: { filter: unknown }[] }[] };
    expect(o.filter).toEqual({ must: [cond] });
    expect(o.prefetch[0]?.filter).toEqual({ must: [cond] });
    expect(o.prefetch[0]?.prefetch?.[0]?.filter).toEqual({ must: [cond] });
    expect(o.prefetch[1]?.filter).toEqual({ must: [cond, { must: [] }] });
  });

  it('collects example ids from every query variant and prefetch', () => {
    const { examples } = scope({
      prefetch: [
        { query: 1 },
        { query: { nearest: 2, mmr: { diversity: 0.5 } } },
        { query: { recommend: { positive: [3, [0.1, 0.2]], negative: ['6a2f41a3-c54c-fce8-32d2-0324e1c32e22'] } } },
        { query: { discover: { target: 4, context: [{ positive: 5, negative: 6 }] } } },
        { query: { context: { positive: 7, negative: 8 } } },
        { query: { relevance_feedback: { target: 9, feedback: [{ example: 10, score: 1 }], strategy: {} } } },
        { query: { indices: [1], values: [0.5] } },
        { query: { text: 'hello', model: 'm' } },
      ],
      query: { fusion: 'rrf' },
    });
    expect(examples['']).toEqual([1, 2, 3, '6a2f41a3-c54c-fce8-32d2-0324e1c32e22', 4, 5, 6, 7, 8, 9, 10]);
  });

  it('files lookup_from ids under their collection and refuses unknown collections', () => {
    expect(scope({ query: 1, lookup_from: { collection: 'other' } }, ['other']).examples).toEqual({ other: [1] });
    expect(() => scope({ query: 1, lookup_from: { collection: 'other' } })).toThrow(
      expect.objectContaining({ code: 'QDRANT_LOOKUP_REFUSED' }),
    );
  });

  it('refuses shard_key, with_lookup, mixed or unknown variants and unknown vector inputs', () => {
    const refused: [Record<string, unknown>, string][] = [
      [{ shard_key: 'x' }, 'QDRANT_SHARD_KEY_REFUSED'],
      [{ prefetch: [{ shard_key: 'x' }] }, 'QDRANT_SHARD_KEY_REFUSED'],
      [{ with_lookup: 'c' }, 'QDRANT_LOOKUP_REFUSED'],
      [{ query: { nearest: 1, fusion: 'rrf' } }, 'QDRANT_QUERY_UNSUPPORTED'],
      [{ query: { recommend: { positive: [1], sneaky: [2] } } }, 'QDRANT_QUERY_UNSUPPORTED'],
      [{ query: { warp: 1 } }, 'QDRANT_QUERY_UNSUPPORTED'],
      [{ query: { nearest: { id: 1 } } }, 'QDRANT_QUERY_UNSUPPORTED'],
      [{ query: -1 }, 'QDRANT_POINT_INVALID'],
      [{ query: 'not-a-uuid' }, 'QDRANT_POINT_INVALID'],
    ];
    for (const [req, code] of refused) expect(() => scope(req)).toThrow(expect.objectContaining({ code }));
  });
});

describe('payload and id checks', () => {
  it('refuses a payload that sets another tenant, allows the same tenant', () => {
    expect(() => checkPayload({ tenant_id: 'globex' }, 'tenant_id', 'acme')).toThrow(
      expect.objectContaining({ code: 'QDRANT_TENANT_FIELD' }),
    );
    expect(checkPayload({ tenant_id: 'acme', a: 1 }, 'tenant_id', 'acme')).toEqual({ tenant_id: 'acme', a: 1 });
    expect(checkPayload(undefined, 'tenant_id', 'acme')).toEqual({});
    expect(() => checkPayload([], 'tenant_id', 'acme')).toThrow();
  });

  it('refuses paths rooted at the tenant field', () => {
    for (const p of ['tenant_id', 'tenant_id.x', 'tenant_id[0]', 'tenant_id[].y']) {
      expect(() => checkNotTenantPath(p, 'tenant_id', 'key')).toThrow(
        expect.objectContaining({ code: 'QDRANT_TENANT_FIELD' }),
      );
    }
    expect(checkNotTenantPath('tenant_idx', 'tenant_id', 'key')).toBe('tenant_idx');
  });
  it('normalises UUID spellings for id comparison and keeps integers apart', () => {
    expect(idKey('6A2F41A3-C54C-FCE8-32D2-0324E1C32E22')).toBe(idKey('6a2f41a3c54cfce832d20324e1c32e22'));
    expect(idKey(1)).not.toBe(idKey('00000000-0000-0000-0000-000000000001'));
    expect(() => checkPointId(1.5)).toThrow();
    expect(() => checkPointId(Number.MAX_SAFE_INTEGER + 1)).toThrow();
  });
});

describe('params.idf and the IDF corpus', () => {
  const idfAt: [string, Record<string, unknown>][] = [
    ['the request', { query: [1, 0], params: { idf: { corpus: { must: [] } } } }],
    ['the request ("global")', { query: [1, 0], params: { hnsw_ef: 8, idf: 'global' } }],
    ['the request (null)', { query: [1, 0], params: { idf: null } }],
    ['a prefetch', { prefetch: [{ query: [1, 0], params: { idf: 'global' } }], query: { fusion: 'rrf' } }],
    [
      'a nested prefetch',
      { prefetch: { prefetch: [{ query: [1, 0], params: { idf: { corpus: {} } } }] }, query: { fusion: 'rrf' } },
    ],
  ];
  it.each(idfAt)('a caller idf is refused at %s', (_where, req) => {
    expect(() => scope(req)).toThrow(expect.objectContaining({ code: 'QDRANT_IDF_REFUSED' }));
  });

  it('forces the tenant corpus on every level that searches an IDF vector, and only there', () => {
    const req = {
      prefetch: [
        { query: { indices: [1], values: [1] }, using: 'bm25', params: { exact: true } },
        { prefetch: { query: { indices: [2], values: [1] }, using: 'bm25' }, query: [1, 0], using: 'dense' },
        { query: { order_by: 'x' }, using: 'bm25' },
      ],
      query: { fusion: 'rrf' },
      using: 'bm25',
    };
    expect([...vectorsUsed(req)].sort()).toEqual(['bm25', 'dense']);
    const out = forceIdfCorpus(req, cond, new Set(['bm25'])) as typeof req & {
      params?: unknown;
      prefetch: { params?: unknown; prefetch?: { params?: unknown } }[];
    };
    const corpus = { idf: { corpus: { must: [cond] } } };
    expect(out.params).toBeUndefined(); // fusion: no search at this level
    expect(out.prefetch[0]?.params).toEqual({ exact: true, ...corpus });
    expect(out.prefetch[1]?.params).toBeUndefined(); // dense
    expect(out.prefetch[1]?.prefetch).toEqual([
      { query: { indices: [2], values: [1] }, using: 'bm25', params: corpus },
    ]);
    expect(out.prefetch[2]?.params).toBeUndefined(); // order_by: no search
    expect(req.prefetch[0]?.params).toEqual({ exact: true }); // the input is not changed
  });
});
