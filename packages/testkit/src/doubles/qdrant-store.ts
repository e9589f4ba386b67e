/**
 * The Qdrant double's store: collections, points, payload indexes, and every write (upsert,
 * delete, vectors, payload). Reads that filter, score or count are in ./qdrant-query.ts; the HTTP
 * server and routing in ./qdrant.ts.
 */
import {
  DoubleUnsupported,
  type EvalPoint,
  idFromKey,
  matchesFilter,
  type PointIdKey,
  pointIdKey,
} from './qdrant-filter.ts';
import { canonicalPath, mergePayload, parsePayloadPath, removeAtPath, setAtPath } from './qdrant-path.ts';

export type Distance = 'Cosine' | 'Dot' | 'Euclid' | 'Manhattan';
export interface VectorParams {
  size: number;
  distance: Distance;
}
export interface SparseVector {
  indices: number[];
  values: number[];
}
export interface StoredPoint {
  idKey: PointIdKey;
  /** vector name ('' for the default, unnamed vector) → values */
  vectors: Map<string, number[]>;
  /** sparse vector name → indices and values */
  sparse: Map<string, SparseVector>;
  payload: Record<string, unknown>;
  version: number;
}
export interface Collection {
  /** '' for an unnamed single vector */
  vectors: Map<string, VectorParams>;
  /** sparse vector name → whether it uses the IDF modifier */
  sparse: Map<string, { idf: boolean }>;
  named: boolean;
  /**
   * The points this request sees. Auto sharding: every point. Custom sharding: the points of the
   * shard keys the request selected (see {@link QdrantStore.view}); the stored collection's own
   * map stays empty.
   */
  points: Map<PointIdKey, StoredPoint>;
  /** `custom`: points live under shard keys, ids unique per shard key only (as in Qdrant). */
  sharding: 'auto' | 'custom';
  /** Custom sharding: shard key (JSON of the key) → its points. */
  shards: Map<string, Map<PointIdKey, StoredPoint>>;
  /** On a view: the stored collection it was made from. */
  base?: Collection;
  payloadSchema: Record<string, unknown>;
  version: number;
}

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined) continue;
    if (!allowed.includes(k)) throw new DoubleUnsupported(`QdrantProtocolDouble does not implement ${where}.${k}`);
  }
}

/** Collections and their points, as one Qdrant node holds them. */
export class QdrantStore {
  readonly #collections = new Map<string, Collection>();

  /** Collection names, in creation order. */
  names(): string[] {
    return [...this.#collections.keys()];
  }

  has(name: string): boolean {
    return this.#collections.has(name);
  }

  drop(name: string): boolean {
    return this.#collections.delete(name);
  }

  collection(name: string): Collection {
    const c = this.#collections.get(name);
    if (!c) throw new HttpError(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return c;
  }

  /**
   * The collection as one request sees it. Auto sharding: the collection (a shard_key is refused,
   * as Qdrant refuses a key it does not know). Custom sharding, as Qdrant routes it: a read with a
   * shard_key sees only those shard keys' points, a read without one sees every shard key; a write
   * must name exactly one shard key ("Shard key not specified" otherwise) and only touches it.
   */
  view(name: string, shardKey: unknown, write: boolean): Collection {
    const c = this.collection(name);
    const keys = shardKey === undefined || shardKey === null ? null : shardKeys(shardKey);
    if (c.sharding === 'auto') {
      if (keys) throw new DoubleUnsupported(`Bad request: Shard key ${keys.join(', ')} not found`);
      return c;
    }
    if (!keys) {
      if (write) throw new DoubleUnsupported('Wrong input: Shard key not specified');
      return shardView(c, [...c.shards.keys()]);
    }
    if (write && keys.length !== 1) {
      throw new DoubleUnsupported('QdrantProtocolDouble implements writes to one shard key only');
    }
    for (const k of keys) {
      if (!c.shards.has(k)) throw new DoubleUnsupported(`Bad request: Shard key ${JSON.parse(k)} not found`);
    }
    return shardView(c, keys);
  }

  /** `PUT /collections/{c}/shards`: a new, empty shard key of a custom-sharded collection. */
  createShardKey(name: string, body: Record<string, unknown>): boolean {
    const c = this.collection(name);
    if (c.sharding !== 'custom') {
      throw new DoubleUnsupported('Bad request: Shard keys can only be created with custom sharding_method');
    }
    const keys = shardKeys(body.shard_key);
    if (keys.length !== 1 || Array.isArray(body.shard_key)) throw new DoubleUnsupported('Format error: shard_key');
    for (const k of ['shards_number', 'replication_factor']) {
      if (body[k] !== undefined && body[k] !== null) uint(body[k], 1, k);
    }
    const key = keys[0] as string;
    if (c.shards.has(key)) throw new DoubleUnsupported(`Bad request: Shard key ${JSON.parse(key)} already exists`);
    c.shards.set(key, new Map());
    return true;
  }

  /** `GET /collections/{c}/shards`: the shard keys of a custom-sharded collection (null for auto sharding). */
  listShardKeys(name: string): { shard_keys: { key: string | number }[] | null } {
    const c = this.collection(name);
    if (c.sharding !== 'custom') return { shard_keys: null };
    return { shard_keys: [...c.shards.keys()].map((k) => ({ key: JSON.parse(k) as string | number })) };
  }

  /** `POST /collections/{c}/shards/delete`: drops a shard key and every point under it. */
  deleteShardKey(name: string, body: Record<string, unknown>): boolean {
    const c = this.collection(name);
    const keys = shardKeys(body.shard_key);
    if (keys.length !== 1 || Array.isArray(body.shard_key)) throw new DoubleUnsupported('Format error: shard_key');
    const key = keys[0] as string;
    if (c.sharding !== 'custom' || !c.shards.has(key)) {
      throw new DoubleUnsupported(`Bad request: Shard key ${JSON.parse(key)} not found`);
    }
    c.shards.delete(key);
    return true;
  }

  createCollection(name: string, body: Record<string, unknown>): boolean {
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(name)) throw new DoubleUnsupported('Validation error: bad collection name');
    if (this.#collections.has(name)) throw new HttpError(409, `Wrong input: Collection \`${name}\` already exists!`);
    const v = body.vectors;
    const vectors = new Map<string, VectorParams>();
    let named = false;
    if (isObject(v) && typeof v.size === 'number') {
      vectors.set('', vectorParams(v));
    } else if (isObject(v)) {
      named = true;
      for (const [n, p] of Object.entries(v)) vectors.set(n, vectorParams(p));
    } else {
      throw new DoubleUnsupported('QdrantProtocolDouble needs vectors: {size, distance} or named vectors');
    }
    const sparse = new Map<string, { idf: boolean }>();
    if (body.sparse_vectors !== undefined && body.sparse_vectors !== null) {
      if (!isObject(body.sparse_vectors)) throw new DoubleUnsupported('Format error: sparse_vectors');
      for (const [n, p] of Object.entries(body.sparse_vectors)) {
        const params = p ?? {};
        if (!isObject(params)) throw new DoubleUnsupported('Format error: sparse vector params');
        onlyKeys(params, ['modifier', 'index'], 'sparse_vector_params');
        if (![undefined, 'none', 'idf'].includes(params.modifier as string)) {
          throw new DoubleUnsupported('Format error: modifier must be none or idf');
        }
        if (vectors.has(n)) throw new DoubleUnsupported(`Wrong input: vector name ${n} is both dense and sparse`);
        sparse.set(n, { idf: params.modifier === 'idf' });
      }
      named = true;
    }
    const sharding = body.sharding_method ?? 'auto';
    if (sharding !== 'auto' && sharding !== 'custom') {
      throw new DoubleUnsupported('Format error in JSON body: sharding_method must be auto or custom');
    }
    if (body.shard_number !== undefined && body.shard_number !== null) uint(body.shard_number, 1, 'shard_number');
    this.#collections.set(name, {
      vectors,
      sparse,
      named,
      points: new Map(),
      sharding,
      shards: new Map(),
      payloadSchema: {},
      version: 0,
    });
    return true;
  }

  info(name: string): unknown {
    const c = this.collection(name);
    const vectors = c.named ? Object.fromEntries(c.vectors) : c.vectors.get('');
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: c.sharding === 'custom' ? [...c.shards.values()].reduce((n, m) => n + m.size, 0) : c.points.size,
      segments_count: 1,
      config: {
        params: {
          vectors,
          ...(c.sparse.size > 0
            ? {
                sparse_vectors: Object.fromEntries(
                  [...c.sparse].map(([n, { idf }]) => [n, idf ? { modifier: 'idf' } : {}]),
                ),
              }
            : {}),
          shard_number: 1,
          ...(c.sharding === 'custom' ? { sharding_method: 'custom' } : {}),
          replication_factor: 1,
          on_disk_payload: true,
        },
      },
      payload_schema: c.payloadSchema,
    };
  }

  createIndex(name: string, body: Record<string, unknown>): unknown {
    const c = this.collection(name);
    const field = body.field_name;
    if (typeof field !== 'string' || field.length === 0) throw new DoubleUnsupported('Format error: field_name');
    const schema = body.field_schema;
    const types = ['keyword', 'integer', 'float', 'bool', 'uuid'];
    let dataType: string;
    let params: Record<string, unknown> | undefined;
    if (typeof schema === 'string') {
      dataType = schema;
    } else if (isObject(schema) && typeof schema.type === 'string') {
      onlyKeys(schema, ['type', 'is_tenant', 'on_disk'], 'field_schema');
      dataType = schema.type;
      params = schema;
    } else {
      throw new DoubleUnsupported('Format error: field_schema');
    }
    if (!types.includes(dataType)) throw new DoubleUnsupported(`QdrantProtocolDouble does not index ${dataType}`);
    c.payloadSchema[field] = { data_type: dataType, ...(params ? { params } : {}), points: 0 };
    return { operation_id: ++c.version, status: 'completed' };
  }

  #vectorsOf(
    c: Collection,
    v: unknown,
    partial: boolean,
  ): { dense: Map<string, number[]>; sparse: Map<string, SparseVector> } {
    const out = new Map<string, number[]>();
    const sparse = new Map<string, SparseVector>();
    const check = (n: string, values: unknown) => {
      if (c.sparse.has(n)) {
        sparse.set(n, sparseVector(values));
        return;
      }
      const p = c.vectors.get(n);
      if (!p) throw new DoubleUnsupported(`Wrong input: Not existing vector name error: ${n}`);
      if (!Array.isArray(values) || !values.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new DoubleUnsupported('QdrantProtocolDouble implements dense float vectors only');
      }
      if (values.length !== p.size) {
        throw new DoubleUnsupported(
          `Wrong input: Vector dimension error: expected dim: ${p.size}, got ${values.length}`,
        );
      }
      out.set(n, p.distance === 'Cosine' ? normalise(values as number[]) : [...(values as number[])]);
    };
    if (Array.isArray(v)) {
      if (c.named) throw new DoubleUnsupported('Wrong input: this collection has named vectors');
      check('', v);
    } else if (isObject(v)) {
      if (!c.named) throw new DoubleUnsupported('Wrong input: this collection has one unnamed vector');
      for (const [n, values] of Object.entries(v)) check(n, values);
      if (!partial && out.size !== c.vectors.size) throw new DoubleUnsupported('Wrong input: missing named vectors');
    } else {
      throw new DoubleUnsupported('Format error: vector');
    }
    return { dense: out, sparse };
  }

  upsert(c: Collection, body: Record<string, unknown>): unknown {
    const mode = body.update_mode ?? 'upsert';
    if (!['upsert', 'insert_only', 'update_only'].includes(mode as string)) {
      throw new DoubleUnsupported('Format error: update_mode');
    }
    const incoming: {
      idKey: PointIdKey;
      vectors: { dense: Map<string, number[]>; sparse: Map<string, SparseVector> };
      payload: Record<string, unknown>;
    }[] = [];
    if (Array.isArray(body.points) && body.batch === undefined) {
      for (const p of body.points) {
        if (!isObject(p)) throw new DoubleUnsupported('Format error: a point must be an object');
        onlyKeys(p, ['id', 'vector', 'payload'], 'point');
        if (p.payload !== undefined && p.payload !== null && !isObject(p.payload)) {
          throw new DoubleUnsupported('Format error: payload must be an object');
        }
        incoming.push({
          idKey: pointIdKey(p.id),
          vectors: this.#vectorsOf(c, p.vector, false),
          payload: structuredClone((p.payload as Record<string, unknown>) ?? {}),
        });
      }
    } else if (isObject(body.batch) && body.points === undefined) {
      const { ids, vectors, payloads } = body.batch;
      onlyKeys(body.batch, ['ids', 'vectors', 'payloads'], 'batch');
      if (!Array.isArray(ids) || !Array.isArray(vectors) || ids.length !== vectors.length) {
        throw new DoubleUnsupported('QdrantProtocolDouble implements batch with unnamed vectors as a list only');
      }
      ids.forEach((id, i) => {
        const pl = Array.isArray(payloads) ? payloads[i] : undefined;
        if (pl !== undefined && pl !== null && !isObject(pl)) throw new DoubleUnsupported('Format error: payloads');
        incoming.push({
          idKey: pointIdKey(id),
          vectors: this.#vectorsOf(c, vectors[i], false),
          payload: structuredClone((pl as Record<string, unknown>) ?? {}),
        });
      });
    } else {
      throw new DoubleUnsupported('Format error in JSON body: give exactly one of points or batch');
    }
    const op = ++c.version;
    for (const p of incoming) {
      const existing = c.points.get(p.idKey);
      if (existing) {
        if (mode === 'insert_only') continue;
        if (
          body.update_filter !== undefined &&
          body.update_filter !== null &&
          !matchesFilter(body.update_filter, view(c, existing))
        ) {
          continue;
        }
      } else if (mode === 'update_only') {
        continue;
      }
      c.points.set(p.idKey, {
        idKey: p.idKey,
        vectors: p.vectors.dense,
        sparse: p.vectors.sparse,
        payload: p.payload,
        version: op,
      });
    }
    return { operation_id: op, status: 'completed' };
  }

  /** Points matching a filter, in id order (integers first, then UUIDs). */
  select(c: Collection, filter: unknown): StoredPoint[] {
    return [...c.points.values()].filter((p) => matchesFilter(filter, view(c, p))).sort(byId);
  }

  /**
   * Points named by a PointsSelector body. With both `points` and `filter`, Qdrant applies
   * `points` and ignores the filter; the double does the same.
   */
  selector(c: Collection, body: Record<string, unknown>): StoredPoint[] {
    const hasPoints = body.points !== undefined && body.points !== null;
    const hasFilter = body.filter !== undefined && body.filter !== null;
    if (!hasPoints && !hasFilter) throw new DoubleUnsupported('Format error: give points or filter');
    if (!hasPoints) return this.select(c, body.filter);
    if (!Array.isArray(body.points)) throw new DoubleUnsupported('Format error: points must be a list');
    return body.points.map(pointIdKey).flatMap((k) => c.points.get(k) ?? []);
  }

  deletePoints(c: Collection, body: Record<string, unknown>): unknown {
    for (const p of this.selector(c, body)) c.points.delete(p.idKey);
    return { operation_id: ++c.version, status: 'completed' };
  }

  updateVectors(c: Collection, body: Record<string, unknown>): unknown {
    if (!Array.isArray(body.points)) throw new DoubleUnsupported('Format error: points must be a list');
    const updates = body.points.map((p) => {
      if (!isObject(p)) throw new DoubleUnsupported('Format error: a point must be an object');
      onlyKeys(p, ['id', 'vector'], 'point_vectors');
      const idKey = pointIdKey(p.id);
      if (!c.points.has(idKey)) throw new HttpError(404, `Not found: No point with id ${String(p.id)} found`);
      return { idKey, ...this.#vectorsOf(c, p.vector, true) };
    });
    const op = ++c.version;
    for (const u of updates) {
      const p = c.points.get(u.idKey)!;
      if (
        body.update_filter !== undefined &&
        body.update_filter !== null &&
        !matchesFilter(body.update_filter, view(c, p))
      ) {
        continue;
      }
      for (const [n, v] of u.dense) p.vectors.set(n, v);
      for (const [n, v] of u.sparse) p.sparse.set(n, v);
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  deleteVectors(c: Collection, body: Record<string, unknown>): unknown {
    const names = body.vector;
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && (c.vectors.has(n) || c.sparse.has(n)))) {
      throw new DoubleUnsupported('Wrong input: vector must list existing vector names');
    }
    const selected = this.selector(c, body);
    const op = ++c.version;
    for (const p of selected) {
      for (const n of names) {
        p.vectors.delete(n);
        p.sparse.delete(n);
      }
    }
    return { operation_id: op, status: 'completed' };
  }

  setPayload(c: Collection, body: Record<string, unknown>, overwrite: boolean): unknown {
    if (!isObject(body.payload)) throw new DoubleUnsupported('Format error: payload must be an object');
    const key = body.key === undefined || body.key === null ? undefined : parsePayloadPath(body.key);
    const payload = body.payload;
    const selected = this.selector(c, body);
    const op = ++c.version;
    for (const p of selected) {
      if (key) setAtPath(p.payload, key, payload);
      else if (overwrite) p.payload = structuredClone(payload);
      else mergePayload(p.payload, payload);
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  deletePayload(c: Collection, body: Record<string, unknown>): unknown {
    if (!Array.isArray(body.keys) || !body.keys.every((k) => typeof k === 'string')) {
      throw new DoubleUnsupported('Format error: keys must be a list of strings');
    }
    const paths = body.keys.map((k) => parsePayloadPath(k));
    const selected = this.selector(c, body);
    const op = ++c.version;
    for (const p of selected) {
      for (const path of paths) removeAtPath(p.payload, path);
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  clearPayload(c: Collection, body: Record<string, unknown>): unknown {
    const selected = this.selector(c, body);
    const op = ++c.version;
    for (const p of selected) {
      p.payload = {};
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  retrieve(c: Collection, body: Record<string, unknown>): unknown[] {
    if (!Array.isArray(body.ids)) throw new DoubleUnsupported('Format error: ids must be a list');
    const seen = new Set<string>();
    const out: unknown[] = [];
    for (const id of body.ids) {
      const k = pointIdKey(id);
      const p = c.points.get(k);
      if (!p || seen.has(k)) continue;
      seen.add(k);
      out.push(record(c, p, body.with_payload ?? true, body.with_vector ?? false));
    }
    return out;
  }
}

export function sparseVector(v: unknown): SparseVector {
  if (!isObject(v) || !Array.isArray(v.indices) || !Array.isArray(v.values)) {
    throw new DoubleUnsupported('Format error: a sparse vector is {indices, values}');
  }
  onlyKeys(v, ['indices', 'values'], 'sparse_vector');
  const { indices, values } = v as { indices: unknown[]; values: unknown[] };
  if (
    indices.length !== values.length ||
    !indices.every((i) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < 2 ** 32) ||
    !values.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
    new Set(indices).size !== indices.length
  ) {
    throw new DoubleUnsupported('Validation error: sparse vector indices must be unique u32 matching values');
  }
  return { indices: indices as number[], values: values as number[] };
}

export function uint(v: unknown, dflt: number, what: string): number {
  if (v === undefined || v === null) return dflt;
  if (!Number.isInteger(v) || (v as number) < 0) throw new DoubleUnsupported(`Format error: ${what} must be a uint`);
  return v as number;
}

function vectorParams(v: unknown): VectorParams {
  if (!isObject(v) || !Number.isInteger(v.size) || (v.size as number) < 1) {
    throw new DoubleUnsupported('Format error: vector params need a positive size');
  }
  onlyKeys(v, ['size', 'distance', 'on_disk'], 'vector_params');
  if (!['Cosine', 'Dot', 'Euclid', 'Manhattan'].includes(v.distance as string)) {
    throw new DoubleUnsupported('Format error: distance must be Cosine, Dot, Euclid or Manhattan');
  }
  return { size: v.size as number, distance: v.distance as Distance };
}

function indexedPath(field: string): string {
  return canonicalPath(parsePayloadPath(field));
}

const indexedSets = new WeakMap<Record<string, unknown>, { keys: string; set: ReadonlySet<string> }>();

/** Canonical paths of the collection's indexed fields (recomputed only when the schema changed). */
export function indexedOf(c: Collection): ReadonlySet<string> {
  const keys = Object.keys(c.payloadSchema).join('\n');
  const hit = indexedSets.get(c.payloadSchema);
  if (hit && hit.keys === keys) return hit.set;
  const set = new Set(Object.keys(c.payloadSchema).map(indexedPath));
  indexedSets.set(c.payloadSchema, { keys, set });
  return set;
}

export function view(c: Collection, p: StoredPoint): EvalPoint {
  return {
    idKey: p.idKey,
    payload: p.payload,
    vectorNames: [...p.vectors.keys(), ...p.sparse.keys()],
    indexed: indexedOf(c),
  };
}

export function compareKeys(a: string, b: string): number {
  const an = a.startsWith('n:');
  const bn = b.startsWith('n:');
  if (an && bn) return Number(a.slice(2)) - Number(b.slice(2));
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byId(a: StoredPoint, b: StoredPoint): number {
  return compareKeys(a.idKey, b.idKey);
}

export function record(
  c: Collection,
  p: StoredPoint,
  withPayload: unknown,
  withVector: unknown,
): Record<string, unknown> {
  const out: Record<string, unknown> = { id: idFromKey(p.idKey) };
  out.payload = selectPayload(p.payload, withPayload);
  out.vector = selectVector(c, p, withVector);
  return out;
}

function selectPayload(payload: Record<string, unknown>, sel: unknown): Record<string, unknown> | null {
  if (sel === false) return null;
  if (sel === true) return structuredClone(payload);
  if (Array.isArray(sel)) return pick(payload, sel);
  if (isObject(sel)) {
    onlyKeys(sel, ['include', 'exclude'], 'with_payload');
    if (Array.isArray(sel.include)) return pick(payload, sel.include);
    if (Array.isArray(sel.exclude)) {
      const out = structuredClone(payload);
      for (const k of sel.exclude) delete out[k as string];
      return out;
    }
  }
  throw new DoubleUnsupported('Format error: with_payload');
}

function pick(payload: Record<string, unknown>, keys: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (typeof k !== 'string' || /[.[\]]/.test(k))
      throw new DoubleUnsupported('QdrantProtocolDouble selects top-level keys only');
    if (Object.hasOwn(payload, k)) out[k] = structuredClone(payload[k]);
  }
  return out;
}

function selectVector(c: Collection, p: StoredPoint, sel: unknown): unknown {
  if (sel === false) return null;
  const all = () => [...p.vectors, ...[...p.sparse].map(([n, v]) => [n, structuredClone(v)] as const)];
  if (sel === true) return c.named ? Object.fromEntries(all()) : (p.vectors.get('') ?? null);
  if (Array.isArray(sel)) {
    if (!c.named) throw new DoubleUnsupported('Wrong input: this collection has one unnamed vector');
    return Object.fromEntries(all().filter(([n]) => sel.includes(n)));
  }
  throw new DoubleUnsupported('Format error: with_vector');
}

export function normalise(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return n === 0 ? [...v] : v.map((x) => x / n);
}

/** Shard keys of a selector (a key or a list of keys; string or unsigned integer), each as JSON. */
function shardKeys(selector: unknown): string[] {
  const list = Array.isArray(selector) ? selector : [selector];
  if (list.length === 0) throw new DoubleUnsupported('Format error: shard_key');
  return list.map((k) => {
    if ((typeof k === 'string' && k.length > 0) || (Number.isInteger(k) && (k as number) >= 0)) {
      return JSON.stringify(k);
    }
    if (isObject(k)) throw new DoubleUnsupported('QdrantProtocolDouble does not implement shard_key fallback');
    throw new DoubleUnsupported('Format error: a shard key is a string or an unsigned integer');
  });
}

/**
 * The collection restricted to some shard keys. One key: its live map (writes land there). Several
 * keys: a merged, read-only map; the double refuses to merge shard keys that hold the same id
 * (Qdrant allows such duplicates but calls them unsupported, and the double does not guess how
 * a read merges them).
 */
function shardView(c: Collection, keys: string[]): Collection {
  let points: Map<PointIdKey, StoredPoint>;
  if (keys.length === 1) {
    points = c.shards.get(keys[0] as string) as Map<PointIdKey, StoredPoint>;
  } else {
    points = new Map();
    for (const k of keys) {
      for (const [id, p] of c.shards.get(k) ?? []) {
        if (points.has(id)) {
          throw new DoubleUnsupported(
            'QdrantProtocolDouble does not implement reads over shard keys that hold the same point id',
          );
        }
        points.set(id, p);
      }
    }
  }
  const view = Object.create(c) as Collection;
  Object.defineProperty(view, 'points', { value: points, enumerable: true });
  Object.defineProperty(view, 'base', { value: c });
  // operation ids and point versions count on the stored collection
  Object.defineProperty(view, 'version', {
    get: () => c.version,
    set: (v: number) => {
      c.version = v;
    },
  });
  return view;
}
