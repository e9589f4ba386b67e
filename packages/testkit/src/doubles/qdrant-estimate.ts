/**
 * `count` with `exact: false` in the Qdrant protocol double: Qdrant 1.19's cardinality estimate
 * (lib/segment/src/index/query_estimator.rs), modelled so that what leaks from it in Qdrant
 * leaks here too. Each primitive condition is estimated on its own over EVERY point of the
 * collection (an indexed field, has_id or has_vector: its exact count, as Qdrant's index
 * statistics give it; anything else: "unknown", half the collection). The clauses are then
 * combined by independence, never by evaluating the whole filter. So
 * `{must: [tenant = acme, tenant = globex]}` estimates about a quarter of the collection, not 0,
 * and the estimate moves with the other tenant's point count.
 */
import { type EvalPoint, matchesFilter } from './qdrant-filter.ts';
import { canonicalPath, parsePayloadPath } from './qdrant-path.ts';

interface Estimation {
  min: number;
  exp: number;
  max: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const exactly = (n: number): Estimation => ({ min: n, exp: n, max: n });

function combineMust(es: Estimation[], total: number): Estimation {
  if (es.length === 0) return exactly(total);
  const min = es.reduce((acc, e) => Math.max(0, acc + e.min - total), total);
  const max = Math.min(...es.map((e) => e.max));
  const prob = es.reduce((p, e) => p * (total === 0 ? 0 : e.exp / total), 1);
  return { min, exp: Math.round(prob * total), max };
}

function combineShould(es: Estimation[], total: number): Estimation {
  const miss = es.reduce((p, e) => p * (1 - (total === 0 ? 0 : e.exp / total)), 1);
  return {
    min: Math.max(0, ...es.map((e) => e.min)),
    exp: total === 0 ? 0 : Math.round((1 - miss) * total),
    max: Math.min(
      es.reduce((s, e) => s + e.max, 0),
      total,
    ),
  };
}

function combinations<T>(xs: T[], k: number): T[][] {
  if (k === 0) return [[]];
  return xs.flatMap((x, i) => combinations(xs.slice(i + 1), k - 1).map((rest) => [x, ...rest]));
}

/** Qdrant's estimate of how many points match `filter`; `exp` is what count(exact: false) answers. */
export function estimateCount(filter: unknown, points: readonly EvalPoint[], indexed: ReadonlySet<string>): number {
  const total = points.length;
  const countOf = (cond: unknown) => points.filter((p) => matchesFilter({ must: [cond] }, p)).length;
  const isIndexed = (key: unknown) => typeof key === 'string' && indexed.has(canonicalPath(parsePayloadPath(key)));

  const condition = (c: unknown): Estimation => {
    if (!isObject(c)) return { min: 0, exp: Math.floor(total / 2), max: total };
    if ('must' in c || 'should' in c || 'must_not' in c || 'min_should' in c) return filterEstimate(c);
    const key =
      'key' in c ? c.key : isObject(c.is_empty) ? c.is_empty.key : isObject(c.is_null) ? c.is_null.key : undefined;
    if ('has_id' in c || 'has_vector' in c || isIndexed(key)) return exactly(countOf(c));
    return { min: 0, exp: Math.floor(total / 2), max: total }; // CardinalityEstimation::unknown
  };

  const filterEstimate = (f: Record<string, unknown>): Estimation => {
    const parts: Estimation[] = [];
    const must = list(f.must);
    if (must.length > 0) parts.push(combineMust(must.map(condition), total));
    const should = list(f.should);
    if (should.length > 0) parts.push(combineShould(should.map(condition), total));
    if (isObject(f.min_should)) {
      const conds = list(f.min_should.conditions).map(condition);
      const k = Number(f.min_should.min_count);
      parts.push(
        k > conds.length
          ? exactly(0)
          : combineShould(
              combinations(conds, k).map((c) => combineMust(c, total)),
              total,
            ),
      );
    }
    const mustNot = list(f.must_not);
    if (mustNot.length > 0) {
      const inverted = mustNot.map(condition).map((e) => ({
        min: Math.max(0, total - e.max),
        exp: Math.max(0, total - e.exp),
        max: Math.max(0, total - e.min),
      }));
      parts.push(combineMust(inverted, total));
    }
    return combineMust(parts, total);
  };

  // Validate the filter as an exact count would (a bad filter is a 400 either way).
  for (const p of points.slice(0, 1)) matchesFilter(filter, p);
  return isObject(filter) ? filterEstimate(filter).exp : total;
}
