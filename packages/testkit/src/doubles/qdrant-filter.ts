/**
 * Filter evaluation for the Qdrant protocol double, written from Qdrant's filtering documentation
 * (https://qdrant.tech/documentation/concepts/filtering/) and the REST schema of
 * `@qdrant/js-client-rest` 1.19. It is a TEST DOUBLE, not Qdrant: every condition or field it does
 * not implement raises `DoubleUnsupported`, which the server answers with HTTP 400, so a test never
 * silently passes on semantics the double only pretends to have.
 *
 * Implemented:
 * - clauses `must`, `should`, `must_not`, `min_should` (each a single condition or a list);
 *   a Filter nested as a condition;
 * - field conditions `match: {value}`, `match: {any}`, `match: {except}`, numeric `range`,
 *   `is_empty: true` / `is_null: true` flags on a field condition;
 * - `is_empty: {key}`, `is_null: {key}`, `has_id`, `has_vector`, `nested: {key, filter}`.
 * - keys are JSON paths: `a.b`, `a[].b` (every element of array `a`), `a[0].b`. When the value at
 *   the end of the path is an array, a condition matches when any element matches.
 */

/** Thrown for input the double does not implement or that Qdrant would reject; answered with 400. */
export class DoubleUnsupported extends Error {
  override readonly name = 'DoubleUnsupported';
}

export type PointIdKey = string;

/** What the evaluator needs to know about a point. */
export interface EvalPoint {
  idKey: PointIdKey;
  payload: Record<string, unknown>;
  vectorNames: readonly string[];
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
    if (!isObject(ms) || !Array.isArray(ms.conditions) || typeof ms.min_count !== 'number') {
      throw new DoubleUnsupported('Format error in JSON body: min_should needs conditions and min_count');
    }
    onlyKeys(ms, ['conditions', 'min_count'], 'min_should');
    if (ms.conditions.filter(check).length < ms.min_count) return false;
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
    if (nested) throw new DoubleUnsupported('Wrong input: has_id is not supported inside a nested filter');
    if (!Array.isArray(cond.has_id)) throw new DoubleUnsupported('Format error in JSON body: has_id must be a list');
    return cond.has_id.some((id) => pointIdKey(id) === point.idKey);
  }
  if ('has_vector' in cond) {
    onlyKeys(cond, ['has_vector'], 'condition');
    if (nested) throw new DoubleUnsupported('Wrong input: has_vector is not supported inside a nested filter');
    if (typeof cond.has_vector !== 'string') throw new DoubleUnsupported('Format error: has_vector must be a name');
    return point.vectorNames.includes(cond.has_vector);
  }
  if ('is_empty' in cond) {
    onlyKeys(cond, ['is_empty'], 'condition');
    return isEmpty(values(point.payload, fieldKey(cond.is_empty, 'is_empty')));
  }
  if ('is_null' in cond) {
    onlyKeys(cond, ['is_null'], 'condition');
    return isNull(values(point.payload, fieldKey(cond.is_null, 'is_null')));
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
  if (kind === 'is_empty') {
    if (spec !== true) throw new DoubleUnsupported('QdrantProtocolDouble implements only is_empty: true');
    return isEmpty(vals);
  }
  if (kind === 'is_null') {
    if (spec !== true) throw new DoubleUnsupported('QdrantProtocolDouble implements only is_null: true');
    return isNull(vals);
  }
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
    // "Should have at least one value not matching any of the given values"; a point without the
    // field has no value equal to any of them, and Qdrant's empty-value check lets `except` match it.
    if (flat.length === 0) return true;
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

/** Null: the field exists and is null (a missing field is not null). */
function isNull(vals: unknown[]): boolean {
  return vals.length > 0 && vals.some((v) => v === null);
}

function flatten(vals: unknown[]): unknown[] {
  return vals.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

type Segment = { key: string; all: boolean; index?: number };

function parsePath(path: string): Segment[] {
  const out: Segment[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]+)((?:\[\d*\])*)$/.exec(part);
    if (!m) throw new DoubleUnsupported(`QdrantProtocolDouble cannot parse key ${JSON.stringify(path)}`);
    out.push({ key: m[1]!, all: false });
    for (const br of m[2]!.match(/\[\d*\]/g) ?? []) {
      const inner = br.slice(1, -1);
      out.push(inner === '' ? { key: '', all: true } : { key: '', all: false, index: Number(inner) });
    }
  }
  return out;
}

/**
 * The values at a JSON path. Object keys do not reach into arrays unless the path says `[]`;
 * the value at the end of the path is returned as stored (arrays are flattened by the checks).
 */
export function values(payload: Record<string, unknown>, path: string): unknown[] {
  let current: unknown[] = [payload];
  for (const seg of parsePath(path)) {
    const next: unknown[] = [];
    for (const v of current) {
      if (seg.all) {
        if (Array.isArray(v)) next.push(...v);
      } else if (seg.index !== undefined) {
        if (Array.isArray(v) && seg.index < v.length) next.push(v[seg.index]);
      } else if (isObject(v) && Object.hasOwn(v, seg.key)) {
        next.push(v[seg.key]);
      }
    }
    current = next;
  }
  return current;
}
