/**
 * Pure request rewriting: the tenant condition, scoped filters, scoped query trees, and the
 * checks on points and payloads. No I/O here, so every rule is unit-testable.
 */
import type { Schemas } from '@qdrant/js-client-rest';
import { qdrantError } from './errors.ts';
import { parseJsonPath } from './json-path.ts';

export type Filter = Schemas['Filter'];
export type PointId = Schemas['ExtendedPointId'];
export type TenantCondition = { key: string; match: { value: string } };

const FILTER_KEYS = new Set(['must', 'should', 'must_not', 'min_should']);
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** The condition every scoped request carries at the top level of `must`. */
export function tenantCondition(tenantField: string, tenantId: string): TenantCondition {
  return { key: tenantField, match: { value: tenantId } };
}

/**
 * `{ must: [tenant, callerFilter] }`: the caller's filter is kept whole as one nested condition,
 * so its `should`, `must_not` and `min_should` only ever narrow the tenant's own points. Extra
 * conditions (e.g. `has_id`) are ANDed beside it.
 */
export function scopeFilter(cond: TenantCondition, caller: unknown, ...extra: Record<string, unknown>[]): Filter {
  const must: unknown[] = [cond, ...extra];
  const checked = checkFilter(caller);
  if (checked) must.push(checked);
  return { must: must as Filter['must'] };
}

/** Validates a caller filter's shape; returns undefined for no/empty filter. */
export function checkFilter(f: unknown): Filter | undefined {
  if (f === undefined || f === null) return undefined;
  if (!isPlainObject(f)) throw qdrantError('QDRANT_FILTER_INVALID', 'filter must be a Qdrant Filter object');
  const keys = Object.keys(f).filter((k) => f[k] !== undefined && f[k] !== null);
  for (const k of keys) {
    if (!FILTER_KEYS.has(k)) {
      throw qdrantError('QDRANT_FILTER_INVALID', `filter has unknown clause ${JSON.stringify(k)}`);
    }
  }
  assertJson(f, 'filter');
  return keys.length === 0 ? undefined : (f as Filter);
}

/** Rejects values that are not plain JSON (functions, class instances, cycles, non-finite numbers). */
export function assertJson(v: unknown, where: string, seen = new Set<unknown>()): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw qdrantError('QDRANT_POINT_INVALID', `${where} contains a non-finite number`);
    return;
  }
  if (typeof v !== 'object' || seen.has(v)) {
    throw qdrantError('QDRANT_POINT_INVALID', `${where} must be plain JSON`);
  }
  seen.add(v);
  if (Array.isArray(v)) for (const x of v) assertJson(x, where, seen);
  else if (isPlainObject(v))
    for (const x of Object.values(v))
      if (x !== undefined) assertJson(x, where, seen);
      else throw qdrantError('QDRANT_POINT_INVALID', `${where} must be plain JSON`);
  seen.delete(v);
}

/** A Qdrant point id: an unsigned integer or a UUID string. */
export function checkPointId(id: unknown, where = 'point id'): PointId {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  if (typeof id === 'string' && UUID.test(id)) return id;
  throw qdrantError('QDRANT_POINT_INVALID', `${where} must be an unsigned integer or a UUID`);
}

export function checkPointIds(ids: unknown, max: number, where = 'ids'): PointId[] {
  if (!Array.isArray(ids) || ids.length === 0)
    throw qdrantError('QDRANT_POINT_INVALID', `${where} must be a non-empty list`);
  if (ids.length > max) throw qdrantError('QDRANT_POINT_INVALID', `${where} has more than ${max} entries`);
  return ids.map((id) => checkPointId(id, where));
}

/** Same key for 1 and "00000000-...-000001"? No: Qdrant keeps integer and UUID ids apart. */
export function idKey(id: PointId): string {
  return typeof id === 'number' ? `n:${id}` : `u:${id.replace(/-/g, '').toLowerCase()}`;
}

/**
 * A payload a caller wants to write. Refused if it sets the tenant field to anything but this
 * tenant's id (the same value is allowed, so a point read back can be written back).
 */
export function checkPayload(
  payload: unknown,
  tenantField: string,
  tenantId: string,
  where = 'payload',
): Record<string, unknown> {
  if (payload === undefined || payload === null) return {};
  if (!isPlainObject(payload)) throw qdrantError('QDRANT_POINT_INVALID', `${where} must be an object`);
  assertJson(payload, where);
  if (Object.hasOwn(payload, tenantField) && payload[tenantField] !== tenantId) {
    throw qdrantError('QDRANT_TENANT_FIELD', `${where} may not set the tenant field ${JSON.stringify(tenantField)}`);
  }
  return payload;
}

/**
 * Refuses payload keys/paths that touch the tenant field (set_payload `key`, delete_payload
 * `keys`). The path is parsed with Qdrant's own grammar (see ./json-path.ts) and its parsed first
 * key compared, so every spelling Qdrant accepts (`"tenant_id"`, `tenant_id[]`,
 * `"tenant_id".x`, ...) is caught; a path Qdrant would not parse is refused as malformed.
 */
export function checkNotTenantPath(path: unknown, tenantField: string, where: string): string {
  if (typeof path !== 'string' || path.length === 0) {
    throw qdrantError('QDRANT_POINT_INVALID', `${where} must be a non-empty string`);
  }
  const parsed = parseJsonPath(path);
  if (!parsed) throw qdrantError('QDRANT_POINT_INVALID', `${where} is not a valid Qdrant payload path`);
  if (parsed.firstKey === tenantField) {
    throw qdrantError('QDRANT_TENANT_FIELD', `${where} may not touch the tenant field ${JSON.stringify(tenantField)}`);
  }
  return path;
}

/** Point ids used as examples somewhere in a query tree, grouped by the collection they are looked up in. */
export interface ExampleIds {
  /** collection name ('' = the scoped collection itself) → ids */
  byCollection: Map<string, PointId[]>;
}

/** Query variants and the extra keys each may carry. Anything else is refused (fail closed). */
const QUERY_VARIANTS: Record<string, readonly string[]> = {
  nearest: ['mmr'],
  recommend: [],
  discover: [],
  context: [],
  relevance_feedback: [],
  order_by: [],
  fusion: [],
  rrf: [],
  sample: [],
  formula: ['defaults'],
};

/**
 * Scopes a query request (query, query-groups, or one search of a batch): the tenant filter goes
 * on the request and on every prefetch at every depth; every point id used as an example is
 * collected for an ownership check; `lookup_from` is allowed only for configured collections;
 * `shard_key` and `with_lookup` are refused.
 */
export function scopeQueryRequest<T extends Record<string, unknown>>(
  req: T,
  cond: TenantCondition,
  lookupCollections: ReadonlySet<string>,
  examples: ExampleIds,
  top = true,
): T {
  if (!isPlainObject(req)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'a query request must be an object');
  if (req.shard_key !== undefined && req.shard_key !== null) {
    throw qdrantError('QDRANT_SHARD_KEY_REFUSED', 'shard_key is chosen by the placement, not the caller');
  }
  if (top && req.with_lookup !== undefined && req.with_lookup !== null) {
    throw qdrantError(
      'QDRANT_LOOKUP_REFUSED',
      'with_lookup reads another collection by group id without a filter; refused',
    );
  }
  let lookupIn = '';
  if (req.lookup_from !== undefined && req.lookup_from !== null) {
    const lf = req.lookup_from;
    if (!isPlainObject(lf) || typeof lf.collection !== 'string') {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'lookup_from must be {collection, vector?}');
    }
    if (lf.shard_key !== undefined && lf.shard_key !== null) {
      throw qdrantError('QDRANT_SHARD_KEY_REFUSED', 'lookup_from.shard_key is not accepted');
    }
    if (!lookupCollections.has(lf.collection)) {
      throw qdrantError(
        'QDRANT_LOOKUP_REFUSED',
        'lookup_from names a collection that is not configured as tenant-scoped',
      );
    }
    lookupIn = lf.collection;
  }
  checkSearchParams(req.params);
  const out: Record<string, unknown> = { ...req, filter: scopeFilter(cond, req.filter) };
  const add = (id: PointId) => {
    const list = examples.byCollection.get(lookupIn) ?? [];
    list.push(id);
    examples.byCollection.set(lookupIn, list);
  };
  if (req.query !== undefined && req.query !== null) collectQueryIds(req.query, add);
  if (req.prefetch !== undefined && req.prefetch !== null) {
    const list = Array.isArray(req.prefetch) ? req.prefetch : [req.prefetch];
    out.prefetch = list.map((p) => {
      if (!isPlainObject(p)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'a prefetch must be an object');
      return scopeQueryRequest(p, cond, lookupCollections, examples, false);
    });
  }
  return out as T;
}

/**
 * `params` of a query or prefetch. A caller-chosen `idf` (the population sparse IDF statistics
 * are computed over, Qdrant 1.19+) is refused at every depth: the scope decides it (see
 * {@link forceIdfCorpus}), since scores computed over another tenant's points reveal their terms.
 */
function checkSearchParams(params: unknown): void {
  if (params === undefined || params === null) return;
  if (!isPlainObject(params)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'params must be an object');
  if (params.idf !== undefined) {
    throw qdrantError('QDRANT_IDF_REFUSED', 'params.idf (the IDF corpus) is chosen by the scope, not the caller');
  }
}

/** Query variants that run no vector search (so no IDF statistics are used at that level). */
const NO_SEARCH = new Set(['order_by', 'fusion', 'rrf', 'sample', 'formula']);

function searchesAt(level: Record<string, unknown>): boolean {
  const q = level.query;
  if (q === undefined || q === null) return false;
  if (!isPlainObject(q)) return true;
  return !Object.keys(q).some((k) => NO_SEARCH.has(k) && q[k] !== undefined && q[k] !== null);
}

function levels(req: Record<string, unknown>, visit: (level: Record<string, unknown>) => void): void {
  visit(req);
  if (req.prefetch === undefined || req.prefetch === null) return;
  for (const p of [req.prefetch].flat()) if (isPlainObject(p)) levels(p, visit);
}

/** Vector names (`using`) a scoped query request searches at any depth. */
export function vectorsUsed(req: Record<string, unknown>): Set<string> {
  const names = new Set<string>();
  levels(req, (l) => {
    if (typeof l.using === 'string' && searchesAt(l)) names.add(l.using);
  });
  return names;
}

/**
 * Forces the IDF corpus to the tenant on every level (request and every prefetch) that searches
 * a sparse vector with the IDF modifier, so document frequencies are counted over this tenant's
 * points only. Returns a new request; levels on other vectors are left alone (Qdrant refuses
 * `idf` on a vector without the modifier).
 */
export function forceIdfCorpus<T extends Record<string, unknown>>(
  req: T,
  cond: TenantCondition,
  idfVectors: ReadonlySet<string>,
): T {
  const rewrite = (level: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...level };
    if (typeof level.using === 'string' && idfVectors.has(level.using) && searchesAt(level)) {
      out.params = {
        ...(isPlainObject(level.params) ? level.params : {}),
        idf: { corpus: scopeFilter(cond, undefined) },
      };
    }
    if (level.prefetch !== undefined && level.prefetch !== null) {
      out.prefetch = [level.prefetch].flat().map((p) => (isPlainObject(p) ? rewrite(p) : p));
    }
    return out;
  };
  return rewrite(req) as T;
}

function collectQueryIds(q: unknown, add: (id: PointId) => void): void {
  if (!isPlainObject(q)) {
    vectorInput(q, add, 'query');
    return;
  }
  const keys = Object.keys(q).filter((k) => q[k] !== undefined && q[k] !== null);
  const variants = keys.filter((k) => Object.hasOwn(QUERY_VARIANTS, k));
  if (variants.length === 0) {
    vectorInput(q, add, 'query'); // sparse vector or inference object
    return;
  }
  const [variant] = variants as [string];
  const extras = keys.filter((k) => k !== variant);
  if (variants.length > 1 || extras.some((k) => !QUERY_VARIANTS[variant]!.includes(k))) {
    throw qdrantError('QDRANT_QUERY_UNSUPPORTED', `query mixes ${keys.join(', ')}; give exactly one query variant`);
  }
  switch (variant) {
    case 'nearest':
      vectorInput(q.nearest, add, 'nearest');
      return;
    case 'recommend': {
      const r = q.recommend;
      if (!isPlainObject(r)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'recommend must be an object');
      onlyKeys(r, ['positive', 'negative', 'strategy'], 'recommend');
      for (const v of listOf(r.positive, 'recommend.positive')) vectorInput(v, add, 'recommend.positive');
      for (const v of listOf(r.negative, 'recommend.negative')) vectorInput(v, add, 'recommend.negative');
      return;
    }
    case 'discover': {
      const d = q.discover;
      if (!isPlainObject(d)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'discover must be an object');
      onlyKeys(d, ['target', 'context'], 'discover');
      vectorInput(d.target, add, 'discover.target');
      contextPairs(d.context, add);
      return;
    }
    case 'context':
      contextPairs(q.context, add);
      return;
    case 'relevance_feedback': {
      const r = q.relevance_feedback;
      if (!isPlainObject(r)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'relevance_feedback must be an object');
      onlyKeys(r, ['target', 'feedback', 'strategy'], 'relevance_feedback');
      vectorInput(r.target, add, 'relevance_feedback.target');
      for (const f of listOf(r.feedback, 'relevance_feedback.feedback')) {
        if (!isPlainObject(f)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'feedback items must be objects');
        onlyKeys(f, ['example', 'score'], 'feedback');
        vectorInput(f.example, add, 'relevance_feedback.example');
      }
      return;
    }
    default:
      // order_by, fusion, rrf, sample, formula: no example points (formula conditions only score
      // candidates that are already filtered).
      return;
  }
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (o[k] !== undefined && o[k] !== null && !allowed.includes(k)) {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', `${where} has unknown field ${JSON.stringify(k)}`);
    }
  }
}

function listOf(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', `${where} must be a list`);
  return v;
}

function contextPairs(ctx: unknown, add: (id: PointId) => void): void {
  if (ctx === undefined || ctx === null) return;
  for (const pair of Array.isArray(ctx) ? ctx : [ctx]) {
    if (!isPlainObject(pair)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'a context pair must be an object');
    vectorInput(pair.positive, add, 'context.positive');
    vectorInput(pair.negative, add, 'context.negative');
  }
}

/** A VectorInput: a point id (collected), a dense/multi vector, a sparse vector, or an inference input. */
function vectorInput(v: unknown, add: (id: PointId) => void, where: string): void {
  if (typeof v === 'number' || typeof v === 'string') {
    add(checkPointId(v, `${where} example id`));
    return;
  }
  if (Array.isArray(v)) {
    const dense = v.every((x) => typeof x === 'number');
    const multi = v.every((x) => Array.isArray(x) && x.every((y) => typeof y === 'number'));
    if (dense || multi) return;
  }
  if (isPlainObject(v)) {
    const keys = Object.keys(v);
    if (Array.isArray(v.indices) && Array.isArray(v.values) && keys.every((k) => k === 'indices' || k === 'values'))
      return;
    const kinds = keys.filter((k) => k === 'text' || k === 'image' || k === 'object');
    if (
      typeof v.model === 'string' &&
      kinds.length === 1 &&
      keys.every((k) => [...kinds, 'model', 'options'].includes(k))
    ) {
      return;
    }
  }
  throw qdrantError('QDRANT_QUERY_UNSUPPORTED', `${where}: unsupported vector input`);
}
