/**
 * The Qdrant double's reads that filter, score or count: scroll, count (exact and estimated),
 * facet, query (nearest, recommend, discover, context, fusion, sample, sparse with IDF), groups
 * and the distance matrix, over a {@link QdrantStore}.
 */
import { randomUUID } from 'node:crypto';
import { estimateCount } from './qdrant-estimate.ts';
import { DoubleUnsupported, idFromKey, matchesFilter, pointIdKey } from './qdrant-filter.ts';
import {
  byId,
  type Collection,
  compareKeys,
  type Distance,
  HttpError,
  indexedOf,
  isObject,
  normalise,
  onlyKeys,
  type QdrantStore,
  record,
  type StoredPoint,
  sparseVector,
  uint,
  view,
} from './qdrant-store.ts';

/** `count`: exact, or (exact: false) Qdrant's cardinality estimate, which is not limited to the filtered points. */
export function count(store: QdrantStore, c: Collection, body: Record<string, unknown>): { count: number } {
  const exact = body.exact ?? true;
  if (typeof exact !== 'boolean') throw new DoubleUnsupported('Format error in JSON body: exact must be a bool');
  const matching = store.select(c, body.filter);
  if (exact || body.filter === undefined || body.filter === null) return { count: matching.length };
  const points = [...c.points.values()].map((p) => view(c, p));
  return { count: estimateCount(body.filter, points, indexedOf(c)) };
}

export function scroll(store: QdrantStore, c: Collection, body: Record<string, unknown>): unknown {
  const limit = uint(body.limit, 10, 'limit');
  let points = store.select(c, body.filter);
  if (body.offset !== undefined && body.offset !== null) {
    const from = pointIdKey(body.offset);
    points = points.filter((p) => compareKeys(p.idKey, from) >= 0);
  }
  const page = points.slice(0, limit);
  const next = points[limit];
  return {
    points: page.map((p) => record(c, p, body.with_payload ?? true, body.with_vector ?? false)),
    next_page_offset: next ? idFromKey(next.idKey) : null,
  };
}

export function facet(store: QdrantStore, c: Collection, body: Record<string, unknown>): unknown {
  if (typeof body.key !== 'string') throw new DoubleUnsupported('Format error: key');
  if (!c.payloadSchema[body.key]) {
    throw new DoubleUnsupported(`Bad request: Index required but not found for "${body.key}"`);
  }
  const counts = new Map<string, { value: unknown; count: number }>();
  for (const p of store.select(c, body.filter)) {
    const raw = p.payload[body.key];
    const vals = new Set(
      (Array.isArray(raw) ? raw : [raw]).filter((v) => ['string', 'number', 'boolean'].includes(typeof v)),
    );
    for (const v of vals) {
      const k = JSON.stringify(v);
      const e = counts.get(k) ?? { value: v, count: 0 };
      e.count++;
      counts.set(k, e);
    }
  }
  const hits = [...counts.values()].sort((a, b) => b.count - a.count || String(a.value).localeCompare(String(b.value)));
  return { hits: hits.slice(0, uint(body.limit, 10, 'limit')) };
}

/** Runs a query (with its prefetches) and returns scored points. */
export function query(store: QdrantStore, c: Collection, body: Record<string, unknown>): unknown[] {
  const scored = runQuery(store, c, body, true);
  const offset = uint(body.offset, 0, 'offset');
  const limit = uint(body.limit, 10, 'limit');
  return scored.slice(offset, offset + limit).map(({ p, score }) => ({
    ...record(c, p, body.with_payload ?? false, body.with_vector ?? false),
    version: p.version,
    score,
  }));
}

/**
 * Candidates and scores for a query or prefetch: the filter narrows the candidates (prefetch
 * results if there are prefetches, else the collection), then the query scores and orders them.
 */
function runQuery(
  store: QdrantStore,
  c: Collection,
  body: Record<string, unknown>,
  top: boolean,
): { p: StoredPoint; score: number }[] {
  if (!top) onlyKeys(body, PREFETCH_FIELDS, 'prefetch');
  const prefetches = body.prefetch === undefined || body.prefetch === null ? [] : [body.prefetch].flat();
  let candidates: StoredPoint[];
  const prefetched: { p: StoredPoint; score: number }[][] = [];
  if (prefetches.length > 0) {
    for (const pf of prefetches) {
      if (!isObject(pf)) throw new DoubleUnsupported('Format error: a prefetch must be an object');
      const r = runQuery(store, c, pf, false);
      prefetched.push(r.slice(0, uint(pf.limit, 10, 'limit')));
    }
    const byKey = new Map<string, StoredPoint>();
    for (const list of prefetched) for (const { p } of list) byKey.set(p.idKey, p);
    candidates = [...byKey.values()].filter((p) => matchesFilter(body.filter, view(c, p)));
  } else {
    candidates = store.select(c, body.filter);
  }
  const using = typeof body.using === 'string' ? body.using : '';
  const lookup = lookupFrom(store, c, body.lookup_from, using);
  const q = body.query;
  const idf = searchParams(body.params);
  if (q === undefined || q === null) {
    if (prefetched.length > 0) {
      const first = new Set(candidates.map((p) => p.idKey));
      return prefetched[0]!.filter(({ p }) => first.has(p.idKey));
    }
    return candidates.sort(byId).map((p) => ({ p, score: 0 }));
  }
  if (isObject(q) && 'fusion' in q) {
    onlyKeys(q, ['fusion'], 'query');
    if (q.fusion !== 'rrf') throw new DoubleUnsupported(`QdrantProtocolDouble does not implement fusion ${q.fusion}`);
    return rrf(prefetched, new Set(candidates.map((p) => p.idKey)));
  }
  if (isObject(q) && 'sample' in q) {
    onlyKeys(q, ['sample'], 'query');
    if (q.sample !== 'random') throw new DoubleUnsupported('Format error: sample');
    return shuffle(candidates).map((p) => ({ p, score: 0 }));
  }
  if (idf !== undefined && !c.sparse.get(using)?.idf) {
    // Qdrant 1.19 refuses an idf search param it cannot apply (init_query_context).
    throw new DoubleUnsupported(
      `Validation error: search param \`idf\` requires a sparse vector with the \`idf\` modifier, which vector "${using}" is not`,
    );
  }
  if (c.sparse.has(using)) return sparseSearch(store, c, q, using, candidates, idf, body.score_threshold);
  const params = c.vectors.get(using);
  if (!params) throw new DoubleUnsupported(`Wrong input: Not existing vector name error: ${using}`);
  const resolve = (input: unknown): number[] => {
    if (typeof input === 'number' || typeof input === 'string') {
      const p = lookup.collection.points.get(pointIdKey(input));
      const v = p?.vectors.get(lookup.using);
      if (!v) throw new HttpError(404, `Not found: No point with id ${String(input)} found`);
      return v;
    }
    if (Array.isArray(input) && input.every((x) => typeof x === 'number')) {
      if (input.length !== params.size) {
        throw new DoubleUnsupported(
          `Wrong input: Vector dimension error: expected dim: ${params.size}, got ${input.length}`,
        );
      }
      return params.distance === 'Cosine' ? normalise(input) : input;
    }
    throw new DoubleUnsupported('QdrantProtocolDouble implements dense vectors and point ids as query inputs only');
  };
  const sim = (a: number[], b: number[]) => similarity(params.distance, a, b);
  const higherIsBetter = params.distance === 'Cosine' || params.distance === 'Dot';
  const withVector = candidates.filter((p) => p.vectors.has(using));
  let score: (v: number[]) => number;
  const exclude = new Set<string>();
  let kind = 'nearest';
  if (isObject(q) && 'nearest' in q) {
    onlyKeys(q, ['nearest'], 'query');
    const v = resolve(q.nearest);
    score = (x) => sim(v, x);
  } else if (isObject(q) && 'recommend' in q) {
    onlyKeys(q, ['recommend'], 'query');
    const r = q.recommend;
    if (!isObject(r)) throw new DoubleUnsupported('Format error: recommend');
    onlyKeys(r, ['positive', 'negative', 'strategy'], 'recommend');
    const pos = (Array.isArray(r.positive) ? r.positive : []).map(resolve);
    const neg = (Array.isArray(r.negative) ? r.negative : []).map(resolve);
    for (const x of [
      ...(Array.isArray(r.positive) ? r.positive : []),
      ...(Array.isArray(r.negative) ? r.negative : []),
    ]) {
      if (typeof x !== 'object' && lookup.same) exclude.add(pointIdKey(x));
    }
    if (pos.length === 0) throw new DoubleUnsupported('Wrong input: recommend needs at least one positive example');
    const strategy = r.strategy ?? 'average_vector';
    if (strategy === 'average_vector') {
      const avgPos = average(pos);
      const target = neg.length === 0 ? avgPos : avgPos.map((x, i) => x + x - average(neg)[i]!);
      score = (x) => sim(target, x);
    } else if (strategy === 'sum_scores') {
      score = (x) => pos.reduce((s, v) => s + sim(v, x), 0) - neg.reduce((s, v) => s + sim(v, x), 0);
      kind = 'score';
    } else {
      throw new DoubleUnsupported(`QdrantProtocolDouble does not implement recommend strategy ${String(strategy)}`);
    }
  } else if (isObject(q) && ('discover' in q || 'context' in q)) {
    const isDiscover = 'discover' in q;
    onlyKeys(q, [isDiscover ? 'discover' : 'context'], 'query');
    const d = isDiscover ? q.discover : { context: q.context };
    if (!isObject(d)) throw new DoubleUnsupported('Format error: discover');
    onlyKeys(d, isDiscover ? ['target', 'context'] : ['context'], 'discover');
    const pairs = [d.context ?? []].flat().map((pair) => {
      if (!isObject(pair)) throw new DoubleUnsupported('Format error: context pair');
      onlyKeys(pair, ['positive', 'negative'], 'context_pair');
      if (lookup.same) {
        for (const x of [pair.positive, pair.negative]) if (typeof x !== 'object') exclude.add(pointIdKey(x));
      }
      return { pos: resolve(pair.positive), neg: resolve(pair.negative) };
    });
    if (isDiscover) {
      if (lookup.same && typeof d.target !== 'object') exclude.add(pointIdKey(d.target));
      const target = resolve(d.target);
      // Discovery score (Qdrant docs): rank by how many pairs the point is on the positive side
      // of, then by similarity to the target squashed into (0, 1).
      score = (x) =>
        pairs.reduce((s, { pos, neg }) => s + (sim(pos, x) > sim(neg, x) ? 1 : -1), 0) +
        1 / (1 + Math.exp(-sim(target, x)));
    } else {
      // Context score: sum over pairs of min(sim(pos) - sim(neg), 0); 0 is best.
      score = (x) => pairs.reduce((s, { pos, neg }) => s + Math.min(sim(pos, x) - sim(neg, x), 0), 0);
    }
    kind = 'score';
  } else if (typeof q === 'number' || typeof q === 'string' || Array.isArray(q)) {
    if (lookup.same && (typeof q === 'number' || typeof q === 'string')) exclude.add(pointIdKey(q));
    const v = resolve(q);
    score = (x) => sim(v, x);
  } else {
    const k = isObject(q) ? Object.keys(q).join(',') : typeof q;
    throw new DoubleUnsupported(`QdrantProtocolDouble does not implement query ${k}`);
  }
  const better = kind === 'score' || higherIsBetter ? (a: number, b: number) => b - a : (a: number, b: number) => a - b;
  let out = withVector
    .filter((p) => !exclude.has(p.idKey))
    .map((p) => ({ p, score: score(p.vectors.get(using)!) }))
    .sort((a, b) => better(a.score, b.score) || byId(a.p, b.p));
  const t = body.score_threshold;
  if (typeof t === 'number') {
    out = out.filter(({ score: s }) => (kind === 'score' || higherIsBetter ? s >= t : s <= t));
  }
  return out;
}

/**
 * A sparse nearest search: dot product over shared indices; with the IDF modifier each query
 * weight is multiplied by ln((N - df + 0.5) / (df + 0.5) + 1), where N (points holding the
 * vector) and df (points holding the index) are counted over the corpus: the whole collection
 * (every tenant) unless `params.idf.corpus` narrows it. Only points sharing an index with the
 * query are returned.
 */
function sparseSearch(
  store: QdrantStore,
  c: Collection,
  q: unknown,
  using: string,
  candidates: StoredPoint[],
  idf: IdfParam | undefined,
  threshold: unknown,
): { p: StoredPoint; score: number }[] {
  if (isObject(q) && 'nearest' in q) onlyKeys(q, ['nearest'], 'query');
  const input = isObject(q) && 'nearest' in q ? q.nearest : q;
  const query = sparseVector(input);
  let weights = query.values;
  if (c.sparse.get(using)!.idf) {
    // N is the number of documents: corpus points that hold this sparse vector (Qdrant's
    // fill_idf_statistics), not every point of the corpus.
    const corpus = (
      idf === undefined || idf === 'global' ? [...c.points.values()] : store.select(c, idf.corpus)
    ).filter((p) => p.sparse.has(using));
    const n = corpus.length;
    weights = query.indices.map((index, k) => {
      const df = corpus.filter((p) => p.sparse.get(using)?.indices.includes(index)).length;
      return query.values[k]! * Math.log((n - df + 0.5) / (df + 0.5) + 1);
    });
  }
  const out: { p: StoredPoint; score: number }[] = [];
  for (const p of candidates) {
    const v = p.sparse.get(using);
    if (!v) continue;
    let score = 0;
    let shared = false;
    query.indices.forEach((index, k) => {
      const at = v.indices.indexOf(index);
      if (at >= 0) {
        shared = true;
        score += weights[k]! * v.values[at]!;
      }
    });
    if (shared && (typeof threshold !== 'number' || score >= threshold)) out.push({ p, score });
  }
  return out.sort((a, b) => b.score - a.score || byId(a.p, b.p));
}

function lookupFrom(
  store: QdrantStore,
  c: Collection,
  from: unknown,
  using: string,
): { collection: Collection; using: string; same: boolean } {
  if (from === undefined || from === null) return { collection: c, using, same: true };
  if (!isObject(from) || typeof from.collection !== 'string') throw new DoubleUnsupported('Format error: lookup_from');
  onlyKeys(from, ['collection', 'vector'], 'lookup_from');
  const other = store.view(from.collection, undefined, false);
  return {
    collection: other,
    using: typeof from.vector === 'string' ? from.vector : '',
    same: (other.base ?? other) === (c.base ?? c),
  };
}

export function groups(store: QdrantStore, c: Collection, body: Record<string, unknown>): unknown {
  if (typeof body.group_by !== 'string') throw new DoubleUnsupported('Format error: group_by');
  if (body.with_lookup !== undefined && body.with_lookup !== null) {
    throw new DoubleUnsupported('QdrantProtocolDouble does not implement with_lookup');
  }
  const groupSize = uint(body.group_size, 3, 'group_size');
  const limit = uint(body.limit, 10, 'limit');
  const groups = new Map<string, { id: unknown; hits: unknown[] }>();
  for (const { p, score } of runQuery(store, c, body, true)) {
    const raw = p.payload[body.group_by];
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      if (typeof v !== 'string' && !Number.isInteger(v)) continue;
      const k = JSON.stringify(v);
      let g = groups.get(k);
      if (!g) {
        if (groups.size >= limit) continue;
        g = { id: v, hits: [] };
        groups.set(k, g);
      }
      if (g.hits.length < groupSize) {
        g.hits.push({
          ...record(c, p, body.with_payload ?? false, body.with_vector ?? false),
          version: p.version,
          score,
        });
      }
    }
  }
  return { groups: [...groups.values()] };
}

export function matrix(store: QdrantStore, c: Collection, body: Record<string, unknown>) {
  const using = typeof body.using === 'string' ? body.using : '';
  const params = c.vectors.get(using);
  if (!params) throw new DoubleUnsupported(`Wrong input: Not existing vector name error: ${using}`);
  const sample = store
    .select(c, body.filter)
    .filter((p) => p.vectors.has(using))
    .slice(0, uint(body.sample, 10, 'sample'));
  const limit = uint(body.limit, 3, 'limit');
  const higherIsBetter = params.distance === 'Cosine' || params.distance === 'Dot';
  const pairs: { a: unknown; b: unknown; score: number }[] = [];
  const offsets = {
    offsets_row: [] as number[],
    offsets_col: [] as number[],
    scores: [] as number[],
    ids: sample.map((p) => idFromKey(p.idKey)),
  };
  sample.forEach((a, i) => {
    const near = sample
      .map((b, j) => ({ j, score: similarity(params.distance, a.vectors.get(using)!, b.vectors.get(using)!) }))
      .filter(({ j }) => j !== i)
      .sort((x, y) => (higherIsBetter ? y.score - x.score : x.score - y.score))
      .slice(0, limit);
    for (const n of near) {
      pairs.push({ a: idFromKey(a.idKey), b: idFromKey(sample[n.j]!.idKey), score: n.score });
      offsets.offsets_row.push(i);
      offsets.offsets_col.push(n.j);
      offsets.scores.push(n.score);
    }
  });
  return { pairs, offsets };
}

export const QUERY_FIELDS = [
  'prefetch',
  'query',
  'using',
  'filter',
  'params',
  'score_threshold',
  'limit',
  'offset',
  'with_vector',
  'with_payload',
  'lookup_from',
  'shard_key',
] as const;

const PREFETCH_FIELDS = ['prefetch', 'query', 'using', 'filter', 'params', 'score_threshold', 'limit', 'lookup_from'];

type IdfParam = 'global' | { corpus: unknown };

/**
 * Validates SearchParams as Qdrant 1.19 deserialises them and returns `idf` (undefined when
 * absent or null). The others (hnsw_ef, exact, quantization, indexed_only, acorn) do not change
 * an exact brute-force search, so they are checked and otherwise ignored.
 */
function searchParams(params: unknown): IdfParam | undefined {
  if (params === undefined || params === null) return undefined;
  if (!isObject(params)) throw new DoubleUnsupported('Format error in JSON body: params must be an object');
  onlyKeys(params, ['hnsw_ef', 'exact', 'quantization', 'indexed_only', 'acorn', 'idf'], 'params');
  if (
    params.hnsw_ef !== undefined &&
    params.hnsw_ef !== null &&
    (!Number.isInteger(params.hnsw_ef) || (params.hnsw_ef as number) < 1)
  ) {
    throw new DoubleUnsupported('Validation error: hnsw_ef must be at least 1');
  }
  for (const k of ['exact', 'indexed_only']) {
    if (params[k] !== undefined && params[k] !== null && typeof params[k] !== 'boolean') {
      throw new DoubleUnsupported(`Format error in JSON body: params.${k} must be a bool`);
    }
  }
  for (const k of ['quantization', 'acorn']) {
    if (params[k] !== undefined && params[k] !== null && !isObject(params[k])) {
      throw new DoubleUnsupported(`Format error in JSON body: params.${k} must be an object`);
    }
  }
  const idf = params.idf;
  if (idf === undefined || idf === null) return undefined;
  if (idf === 'global') return 'global';
  if (isObject(idf) && isObject(idf.corpus)) {
    onlyKeys(idf, ['corpus'], 'params.idf');
    return { corpus: idf.corpus };
  }
  throw new DoubleUnsupported('Format error in JSON body: params.idf must be "global" or {corpus: filter}');
}

function similarity(d: Distance, a: number[], b: number[]): number {
  switch (d) {
    case 'Cosine':
    case 'Dot':
      return a.reduce((s, x, i) => s + x * b[i]!, 0);
    case 'Euclid':
      return Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]!) ** 2, 0));
    case 'Manhattan':
      return a.reduce((s, x, i) => s + Math.abs(x - b[i]!), 0);
  }
}

function average(vs: number[][]): number[] {
  const out = new Array<number>(vs[0]!.length).fill(0);
  for (const v of vs) {
    for (let i = 0; i < v.length; i++) out[i]! += v[i]! / vs.length;
  }
  return out;
}

function rrf(lists: { p: StoredPoint; score: number }[][], allowed: Set<string>): { p: StoredPoint; score: number }[] {
  const acc = new Map<string, { p: StoredPoint; score: number }>();
  for (const list of lists) {
    list.forEach(({ p }, rank) => {
      if (!allowed.has(p.idKey)) return;
      const e = acc.get(p.idKey) ?? { p, score: 0 };
      e.score += 1 / (rank + 1 + 2);
      acc.set(p.idKey, e);
    });
  }
  return [...acc.values()].sort((a, b) => b.score - a.score || byId(a.p, b.p));
}

function shuffle<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Number.parseInt(randomUUID().slice(0, 8), 16) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
