/**
 * Filter evaluation for the Qdrant protocol double, written from Qdrant's filtering documentation
 * (https://qdrant.tech/documentation/concepts/filtering/), the REST schema of
 * `@qdrant/js-client-rest` 1.19 and Qdrant 1.19's condition checker (query_checker.rs,
 * condition_checker.rs, the null index). It is a TEST DOUBLE, not Qdrant: every condition or field it does
 * not implement raises `DoubleUnsupported`, which the server answers with HTTP 400, so a test never
 * silently passes on semantics the double only pretends to have.
 *
 * Implemented:
 * - clauses `must`, `should`, `must_not`, `min_should` (each a single condition or a list);
 *   a Filter nested as a condition;
 * - field conditions `match: {value}`, `match: {any}`, `match: {except}`, numeric `range`,
 *   `is_empty: true` / `is_null: true` flags on a field condition;
 * - `is_empty: {key}`, `is_null: {key}`, `has_id`, `has_vector`, `nested: {key, filter}`.
 * - keys are JSON paths in Qdrant's grammar (./qdrant-path.ts): `a.b`, `a[].b` (every element of
 *   array `a`), `a[0].b`, quoted keys `"a.b"`. When the value at the end of the path is an array,
 *   a condition matches when any element matches.
 *
 * Qdrant 1.19 behaviours modelled on purpose (each differs from a naive reading of the docs):
 * - a field condition on a missing field is decided by the condition's "empty" answer: false for
 *   `match` (also `match.except`) and `range`, `is_empty: true` → true, `is_null: false` → true;
 * - field-level `is_empty`/`is_null` test each value (`[null]` is null, `[]` is empty);
 * - `is_null: {key}` on `[null]`: true when the field has a payload index (Qdrant's null index),
 *   false otherwise (the payload checker looks for a JSON null value);
 * - `has_id` and `has_vector` inside `nested` match nothing (no 400);
 * - `min_should.min_count` must be at least 1 (Qdrant answers 400 to 0).
 */

import { DoubleUnsupported } from './qdrant-errors.ts';
import { canonicalPath, parsePayloadPath, valuesAt } from './qdrant-path.ts';

export { DoubleUnsupported } from './qdrant-errors.ts';

export type PointIdKey = string;

/** What the evaluator needs to know about a point. */
export interface EvalPoint {
  idKey: PointIdKey;
  payload: Record<string, unknown>;
  vectorNames: readonly string[];
  /** Canonical paths (see canonicalPath) of the payload fields that have an index. */
  indexed?: ReadonlySet<string>;
}

/** Normalises an ExtendedPointId (unsigned integer or UUID) to a map key; throws on anything else. */
export function pointIdKey(id: unknown): PointIdKey {
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id) || id < 0) throw new DoubleUnsupported(`Wrong input: bad point id ${id}`);
    return `n:${id}`;
  }
  if (typeof id === 'string') {
    const uuid = normaliseUuid(id);
    if (!uuid) throw new DoubleUnsupported('Wrong input: point id must be an unsigned integer or a UUID');
    return `u:${uuid}`;
  }
  throw new DoubleUnsupported('Wrong input: point id must be an unsigned integer or a UUID');
}

/** The wire form of a stored id. */
export function idFromKey(key: PointIdKey): number | string {
  return key.startsWith('n:') ? Number(key.slice(2)) : key.slice(2);
}

function normaliseUuid(s: string): string | undefined {
  const hex = s.replace(/[{}-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new DoubleUnsupported(`QdrantProtocolDouble does not implement ${where}.${k}`);
  }
}

/** A clause value: absent/null, one condition, or a list. */
function clauseList(v: unknown, where: string): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v;
  if (isObject(v)) return [v];
  throw new DoubleUnsupported(`Format error in JSON body: ${where} must be a condition or a list`);
}

/** Evaluates a Filter against a point, as Qdrant's query checker does. */
export function matchesFilter(filter: unknown, point: EvalPoint, nested = false): boolean {
  if (filter === undefined || filter === null) return true;
  if (!isObject(filter)) throw new DoubleUnsupported('Format error in JSON body: filter must be an object');
  onlyKeys(filter, ['must', 'should', 'must_not', 'min_should'], 'filter');
  const check = (c: unknown) => matchesCondition(c, point, nested);
  const should = clauseList(filter.should, 'should');
  // Qdrant's checker: a present `should` list needs at least one match, so `should: []` matches nothing.
  if (should && !should.some(check)) return false;
  if (filter.min_should !== undefined && filter.min_should !== null) {
    const ms = filter.min_should;
    if (!isObject(ms) || !Array.isArray(ms.conditions) || !Number.isInteger(ms.min_count)) {
      throw new DoubleUnsupported('Format error in JSON body: min_should needs conditions and min_count');
    }
    onlyKeys(ms, ['conditions', 'min_count'], 'min_should');
    if ((ms.min_count as number) < 1) {
      throw new DoubleUnsupported('Validation error in JSON body: [min_count: min_count must be greater than 0]');
    }
    if (ms.conditions.filter(check).length < (ms.min_count as number)) return false;
  }
  const must = clauseList(filter.must, 'must');
  if (must && !must.every(check)) return false;
  const mustNot = clauseList(filter.must_not, 'must_not');
  if (mustNot?.some(check)) return false;
  return true;
}

function matchesCondition(cond: unknown, point: EvalPoint, nested: boolean): boolean {
  if (!isObject(cond)) throw new DoubleUnsupported('Format error in JSON body: a condition must be an object');
  if ('key' in cond) return matchesField(cond, point.payload);
  if ('has_id' in cond) {
    onlyKeys(cond, ['has_id'], 'condition');
    if (!Array.isArray(cond.has_id)) throw new DoubleUnsupported('Format error in JSON body: has_id must be a list');
    const ids = cond.has_id.map(pointIdKey);
    // Qdrant checks nested objects without an id tracker: has_id inside nested matches nothing.
    return !nested && ids.includes(point.idKey);
  }
  if ('has_vector' in cond) {
    onlyKeys(cond, ['has_vector'], 'condition');
    if (typeof cond.has_vector !== 'string') throw new DoubleUnsupported('Format error: has_vector must be a name');
    // …and without vector storages: has_vector inside nested matches nothing.
    return !nested && point.vectorNames.includes(cond.has_vector);
  }
  if ('is_empty' in cond) {
    onlyKeys(cond, ['is_empty'], 'condition');
    return isEmpty(values(point.payload, fieldKey(cond.is_empty, 'is_empty')));
  }
  if ('is_null' in cond) {
    onlyKeys(cond, ['is_null'], 'condition');
    const key = fieldKey(cond.is_null, 'is_null');
    const vals = values(point.payload, key);
    // With a payload index, Qdrant's null index also counts an array holding a null.
    if (point.indexed?.has(canonicalPath(parsePayloadPath(key)))) {
      return vals.some((v) => v === null || (Array.isArray(v) && v.includes(null)));
    }
    return vals.some((v) => v === null);
  }
  if ('nested' in cond) {
    onlyKeys(cond, ['nested'], 'condition');
    const n = cond.nested;
    if (!isObject(n) || typeof n.key !== 'string') throw new DoubleUnsupported('Format error: nested needs a key');
    onlyKeys(n, ['key', 'filter'], 'nested');
    const key = n.key.endsWith('[]') ? n.key : `${n.key}[]`;
    return values(point.payload, key)
      .filter(isObject)
      .some((element) => matchesFilter(n.filter, { idKey: point.idKey, payload: element, vectorNames: [] }, true));
  }
  if ('must' in cond || 'should' in cond || 'must_not' in cond || 'min_should' in cond) {
    return matchesFilter(cond, point, nested);
  }
  throw new DoubleUnsupported(`QdrantProtocolDouble does not implement condition ${Object.keys(cond).join(',')}`);
}

function fieldKey(v: unknown, where: string): string {
  if (isObject(v) && typeof v.key === 'string') return v.key;
  throw new DoubleUnsupported(`Format error in JSON body: ${where} needs {key}`);
}

function matchesField(cond: Record<string, unknown>, payload: Record<string, unknown>): boolean {
  const key = cond.key;
  if (typeof key !== 'string' || key.length === 0) throw new DoubleUnsupported('Format error: key must be a string');
  const set = Object.entries(cond).filter(([k, v]) => k !== 'key' && v !== null && v !== undefined);
  for (const [k] of set) {
    if (!['match', 'range', 'is_empty', 'is_null'].includes(k)) {
      throw new DoubleUnsupported(`QdrantProtocolDouble does not implement field condition ${k}`);
    }
  }
  if (set.length !== 1) throw new DoubleUnsupported('Wrong input: a field condition needs exactly one check');
  const [kind, spec] = set[0]!;
  const vals = values(payload, key);
  if (kind === 'is_empty' || kind === 'is_null') {
    if (typeof spec !== 'boolean') throw new DoubleUnsupported(`Format error in JSON body: ${kind} must be a bool`);
    // A missing field: is_empty: true and is_null: false match, the others do not.
    if (vals.length === 0) return kind === 'is_empty' ? spec : !spec;
    // Otherwise any value that passes (Qdrant's check_is_empty / check_is_null per value).
    return vals.some((v) => {
      const hit =
        kind === 'is_empty'
          ? v === null || (Array.isArray(v) && v.length === 0)
          : v === null || (Array.isArray(v) && v.includes(null));
      return spec ? hit : !hit;
    });
  }
  if (vals.length === 0) return false; // Qdrant: a match or range on a missing field is false
  const flat = flatten(vals);
  if (kind === 'match') return matchValue(spec, flat);
  return matchRange(spec, flat);
}

function matchValue(spec: unknown, flat: unknown[]): boolean {
  if (!isObject(spec)) throw new DoubleUnsupported('Format error: match must be an object');
  const keys = Object.keys(spec);
  if (keys.length !== 1) throw new DoubleUnsupported('Format error: match takes exactly one of value, any, except');
  const [k] = keys as [string];
  if (k === 'value') {
    const v = spec.value;
    if (!['string', 'number', 'boolean'].includes(typeof v)) throw new DoubleUnsupported('Format error: match.value');
    if (typeof v === 'number' && !Number.isInteger(v)) {
      throw new DoubleUnsupported('Wrong input: match.value takes a keyword, an integer or a bool');
    }
    return flat.some((x) => x === v);
  }
  if (k === 'any' || k === 'except') {
    const list = spec[k];
    if (!Array.isArray(list) || !(list.every((x) => typeof x === 'string') || list.every(Number.isInteger))) {
      throw new DoubleUnsupported(`Format error: match.${k} must be a list of strings or of integers`);
    }
    if (k === 'any') return flat.some((x) => list.includes(x));
    // At least one value not among the given ones. A missing field never gets here (false, as in
    // Qdrant); an empty array has no value, so it does not match either.
    return flat.some((x) => !list.includes(x));
  }
  throw new DoubleUnsupported(`QdrantProtocolDouble does not implement match.${k}`);
}

function matchRange(spec: unknown, flat: unknown[]): boolean {
  if (!isObject(spec)) throw new DoubleUnsupported('Format error: range must be an object');
  onlyKeys(spec, ['gt', 'gte', 'lt', 'lte'], 'range');
  const bounds = Object.entries(spec).filter(([, v]) => v !== null && v !== undefined);
  for (const [, v] of bounds) {
    if (typeof v !== 'number') throw new DoubleUnsupported('QdrantProtocolDouble implements numeric ranges only');
  }
  const b = Object.fromEntries(bounds) as { gt?: number; gte?: number; lt?: number; lte?: number };
  return flat.some(
    (x) =>
      typeof x === 'number' &&
      (b.gt === undefined || x > b.gt) &&
      (b.gte === undefined || x >= b.gte) &&
      (b.lt === undefined || x < b.lt) &&
      (b.lte === undefined || x <= b.lte),
  );
}

/** Empty: the field is missing, null, or an empty array (`[null]` is not empty). */
function isEmpty(vals: unknown[]): boolean {
  return vals.every((v) => v === null || (Array.isArray(v) && v.length === 0));
}

function flatten(vals: unknown[]): unknown[] {
  return vals.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

/**
 * The values at a JSON path. Object keys do not reach into arrays unless the path says `[]`;
 * the value at the end of the path is returned as stored (arrays are flattened by the checks).
 */
export function values(payload: Record<string, unknown>, path: string): unknown[] {
  return valuesAt(payload, parsePayloadPath(path));
}
