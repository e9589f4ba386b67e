/**
 * QdrantProtocolDouble: a TEST DOUBLE of the Qdrant REST API, not Qdrant.
 *
 * A real HTTP server (node:http, loopback) that answers the paths `@qdrant/js-client-rest` 1.19
 * calls, with Qdrant's response envelope (`{result, status: "ok", time}`; errors as
 * `{status: {error}, time}`), and evaluates filters as Qdrant documents them (see
 * ./qdrant-filter.ts). It is strict: an unknown body field, query parameter, condition or query
 * variant gets HTTP 400 naming what is not implemented, so suites written against it keep working
 * against a real Qdrant (set QDRANT_URL) and never depend on something the double only pretends.
 *
 * Modelled from Qdrant 1.19 because they decide what a tenant can learn:
 * - sparse vectors (`sparse_vectors`, with the `idf` modifier) and `params.idf` (`"global"` or
 *   `{corpus: filter}`): document frequencies are counted over the whole collection unless a
 *   corpus filter narrows them, and `idf` on a vector without the modifier is a 400, as in Qdrant;
 * - `count` with `exact: false` answers Qdrant's cardinality estimate (./qdrant-estimate.ts),
 *   computed from statistics over every point, not from the filtered points;
 * - payload keys in Qdrant's JSON-path grammar, quoted keys included (./qdrant-path.ts);
 * - a points selector with both `points` and `filter` applies `points` and ignores the filter;
 * - `set_payload` merges like Qdrant (a null value removes the key).
 *
 * Not implemented (400): multi vectors, shard keys, geo/datetime/text conditions, values_count,
 * order_by, formula, mmr, relevance feedback, dbsf fusion, snapshots, aliases. Exact
 * (brute-force) search only; `params` is validated, and only `idf` changes a result.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { estimateCount } from './qdrant-estimate.ts';
import {
  DoubleUnsupported,
  type EvalPoint,
  idFromKey,
  matchesFilter,
  type PointIdKey,
  pointIdKey,
} from './qdrant-filter.ts';
import { canonicalPath, mergePayload, parsePayloadPath, removeAtPath, setAtPath } from './qdrant-path.ts';

export { DoubleUnsupported } from './qdrant-filter.ts';

type Distance = 'Cosine' | 'Dot' | 'Euclid' | 'Manhattan';
interface VectorParams {
  size: number;
  distance: Distance;
}
interface SparseVector {
  indices: number[];
  values: number[];
}
interface StoredPoint {
  idKey: PointIdKey;
  /** vector name ('' for the default, unnamed vector) → values */
  vectors: Map<string, number[]>;
  /** sparse vector name → indices and values */
  sparse: Map<string, SparseVector>;
  payload: Record<string, unknown>;
  version: number;
}
interface Collection {
  /** '' for an unnamed single vector */
  vectors: Map<string, VectorParams>;
  /** sparse vector name → whether it uses the IDF modifier */
  sparse: Map<string, { idf: boolean }>;
  named: boolean;
  points: Map<PointIdKey, StoredPoint>;
  payloadSchema: Record<string, unknown>;
  version: number;
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined) continue;
    if (!allowed.includes(k)) throw new DoubleUnsupported(`QdrantProtocolDouble does not implement ${where}.${k}`);
  }
}

export interface QdrantProtocolDoubleOptions {
  /** Port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** Version reported by `GET /`. Default `1.19.0` (the REST API level this double imitates). */
  version?: string;
}

export class QdrantProtocolDouble {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly #server: Server;
  readonly #collections = new Map<string, Collection>();
  readonly #version: string;
  #requests = 0;

  private constructor(server: Server, url: string, version: string) {
    this.#server = server;
    this.url = url;
    this.#version = version;
  }

  /** Starts a double on loopback. */
  static async start(options: QdrantProtocolDoubleOptions = {}): Promise<QdrantProtocolDouble> {
    let self: QdrantProtocolDouble | undefined;
    const server = createServer((req, res) => {
      void self!.#handle(req, res);
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    self = new QdrantProtocolDouble(server, `http://127.0.0.1:${port}`, options.version ?? '1.19.0');
    return self;
  }

  /** Requests served so far. */
  get requestCount(): number {
    return this.#requests;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    this.#requests++;
    const send = (status: number, body: unknown) => {
      const time = (performance.now() - started) / 1000;
      const text = JSON.stringify(status < 300 ? { result: body, status: 'ok', time } : { status: body, time });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://double');
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown = {};
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new HttpError(400, 'Format error in JSON body: not JSON');
        }
      }
      const result = this.#route(req.method ?? 'GET', url, body);
      if (url.pathname === '/' && req.method === 'GET') {
        // Qdrant answers `GET /` with the bare version object, not the envelope.
        const text = JSON.stringify(result);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      send(200, result);
    } catch (err) {
      if (err instanceof HttpError) send(err.status, { error: err.message });
      else if (err instanceof DoubleUnsupported) send(400, { error: err.message });
      else send(500, { error: `QdrantProtocolDouble internal error: ${(err as Error).message}` });
    }
  }

  #route(method: string, url: URL, body: unknown): unknown {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const q = Object.fromEntries(url.searchParams);
    const b = (allowed: readonly string[], where: string) => {
      if (!isObject(body)) throw new DoubleUnsupported('Format error in JSON body: expected an object');
      onlyKeys(body, allowed, where);
      return body;
    };
    const params = (allowed: readonly string[]) => {
      for (const k of Object.keys(q)) {
        if (!allowed.includes(k)) throw new DoubleUnsupported(`QdrantProtocolDouble does not implement ?${k}`);
      }
    };
    const key = `${method} /${parts.map((p, i) => (i === 1 && parts[0] === 'collections' ? '{c}' : p)).join('/')}`;
    if (key === 'GET /') {
      return { title: 'QdrantProtocolDouble (a test double, not Qdrant)', version: this.#version, commit: null };
    }
    if (key === 'GET /collections') {
      return { collections: [...this.#collections.keys()].map((name) => ({ name })) };
    }
    const name = parts[1];
    if (parts[0] !== 'collections' || name === undefined) throw new HttpError(404, `Not found: ${url.pathname}`);
    switch (key) {
      case 'PUT /collections/{c}':
        params(['timeout']);
        return this.#createCollection(name, b(['vectors', 'sparse_vectors'], 'create_collection'));
      case 'GET /collections/{c}':
        return this.#info(name);
      case 'GET /collections/{c}/exists':
        return { exists: this.#collections.has(name) };
      case 'DELETE /collections/{c}':
        params(['timeout']);
        return this.#collections.delete(name);
      case 'PUT /collections/{c}/index':
        params(['wait', 'ordering']);
        return this.#createIndex(name, b(['field_name', 'field_schema'], 'create_index'));
      case 'PUT /collections/{c}/points':
        params(['wait', 'ordering', 'timeout']);
        return this.#upsert(name, b(['points', 'batch', 'update_filter', 'update_mode'], 'upsert'));
      case 'POST /collections/{c}/points':
        params(['consistency', 'timeout']);
        return this.#retrieve(name, b(['ids', 'with_payload', 'with_vector'], 'retrieve'));
      case 'POST /collections/{c}/points/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#deletePoints(name, b(['points', 'filter'], 'delete'));
      case 'PUT /collections/{c}/points/vectors':
        params(['wait', 'ordering', 'timeout']);
        return this.#updateVectors(name, b(['points', 'update_filter'], 'update_vectors'));
      case 'POST /collections/{c}/points/vectors/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#deleteVectors(name, b(['points', 'filter', 'vector'], 'delete_vectors'));
      case 'POST /collections/{c}/points/payload':
        params(['wait', 'ordering', 'timeout']);
        return this.#setPayload(name, b(['payload', 'points', 'filter', 'key'], 'set_payload'), false);
      case 'PUT /collections/{c}/points/payload':
        params(['wait', 'ordering', 'timeout']);
        return this.#setPayload(name, b(['payload', 'points', 'filter'], 'overwrite_payload'), true);
      case 'POST /collections/{c}/points/payload/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#deletePayload(name, b(['keys', 'points', 'filter'], 'delete_payload'));
      case 'POST /collections/{c}/points/payload/clear':
        params(['wait', 'ordering', 'timeout']);
        return this.#clearPayload(name, b(['points', 'filter'], 'clear_payload'));
      case 'POST /collections/{c}/points/scroll':
        params(['consistency', 'timeout']);
        return this.#scroll(name, b(['filter', 'limit', 'offset', 'with_payload', 'with_vector'], 'scroll'));
      case 'POST /collections/{c}/points/count':
        params(['timeout']);
        return this.#count(name, b(['filter', 'exact'], 'count'));
      case 'POST /collections/{c}/facet':
        params(['consistency', 'timeout']);
        return this.#facet(name, b(['key', 'filter', 'limit', 'exact'], 'facet'));
      case 'POST /collections/{c}/points/query':
        params(['consistency', 'timeout']);
        return { points: this.#query(name, b(QUERY_FIELDS, 'query')) };
      case 'POST /collections/{c}/points/query/batch': {
        params(['consistency', 'timeout']);
        const { searches } = b(['searches'], 'query_batch');
        if (!Array.isArray(searches)) throw new DoubleUnsupported('Format error: searches must be a list');
        return searches.map((s) => {
          if (!isObject(s)) throw new DoubleUnsupported('Format error: a search must be an object');
          onlyKeys(s, QUERY_FIELDS, 'query');
          return { points: this.#query(name, s) };
        });
      }
      case 'POST /collections/{c}/points/query/groups':
        params(['consistency', 'timeout']);
        return this.#groups(name, b([...QUERY_FIELDS, 'group_by', 'group_size', 'with_lookup'], 'query_groups'));
      case 'POST /collections/{c}/points/search/matrix/pairs':
      case 'POST /collections/{c}/points/search/matrix/offsets': {
        params(['consistency', 'timeout']);
        const m = this.#matrix(name, b(['filter', 'sample', 'limit', 'using'], 'search_matrix'));
        if (parts[5] === 'pairs') return { pairs: m.pairs };
        return m.offsets;
      }
      default:
        if (method === 'GET' && parts[2] === 'points' && parts.length === 4) {
          return this.#retrieve(name, { ids: [parseId(parts[3]!)], with_payload: true, with_vector: true })[0] ?? null;
        }
        throw new HttpError(404, `QdrantProtocolDouble does not implement ${method} ${url.pathname}`);
    }
  }

  #collection(name: string): Collection {
    const c = this.#collections.get(name);
    if (!c) throw new HttpError(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return c;
  }

  #createCollection(name: string, body: Record<string, unknown>): boolean {
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
    this.#collections.set(name, { vectors, sparse, named, points: new Map(), payloadSchema: {}, version: 0 });
    return true;
  }

  #info(name: string): unknown {
    const c = this.#collection(name);
    const vectors = c.named ? Object.fromEntries(c.vectors) : c.vectors.get('');
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: c.points.size,
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
          replication_factor: 1,
          on_disk_payload: true,
        },
      },
      payload_schema: c.payloadSchema,
    };
  }

  #createIndex(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
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

  #upsert(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
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
  #select(name: string, filter: unknown): StoredPoint[] {
    const c = this.#collection(name);
    return [...c.points.values()].filter((p) => matchesFilter(filter, view(c, p))).sort(byId);
  }

  /** `count`: exact, or (exact: false) Qdrant's cardinality estimate, which is not limited to the filtered points. */
  #count(name: string, body: Record<string, unknown>): { count: number } {
    const c = this.#collection(name);
    const exact = body.exact ?? true;
    if (typeof exact !== 'boolean') throw new DoubleUnsupported('Format error in JSON body: exact must be a bool');
    const matching = this.#select(name, body.filter);
    if (exact || body.filter === undefined || body.filter === null) return { count: matching.length };
    const points = [...c.points.values()].map((p) => view(c, p));
    return { count: estimateCount(body.filter, points, indexedOf(c)) };
  }

  /**
   * Points named by a PointsSelector body. With both `points` and `filter`, Qdrant applies
   * `points` and ignores the filter; the double does the same.
   */
  #selector(name: string, body: Record<string, unknown>): StoredPoint[] {
    const hasPoints = body.points !== undefined && body.points !== null;
    const hasFilter = body.filter !== undefined && body.filter !== null;
    if (!hasPoints && !hasFilter) throw new DoubleUnsupported('Format error: give points or filter');
    if (!hasPoints) return this.#select(name, body.filter);
    if (!Array.isArray(body.points)) throw new DoubleUnsupported('Format error: points must be a list');
    const c = this.#collection(name);
    return body.points.map(pointIdKey).flatMap((k) => c.points.get(k) ?? []);
  }

  #deletePoints(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    for (const p of this.#selector(name, body)) c.points.delete(p.idKey);
    return { operation_id: ++c.version, status: 'completed' };
  }

  #updateVectors(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
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

  #deleteVectors(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    const names = body.vector;
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && (c.vectors.has(n) || c.sparse.has(n)))) {
      throw new DoubleUnsupported('Wrong input: vector must list existing vector names');
    }
    const selected = this.#selector(name, body);
    const op = ++c.version;
    for (const p of selected) {
      for (const n of names) {
        p.vectors.delete(n);
        p.sparse.delete(n);
      }
    }
    return { operation_id: op, status: 'completed' };
  }

  #setPayload(name: string, body: Record<string, unknown>, overwrite: boolean): unknown {
    const c = this.#collection(name);
    if (!isObject(body.payload)) throw new DoubleUnsupported('Format error: payload must be an object');
    const key = body.key === undefined || body.key === null ? undefined : parsePayloadPath(body.key);
    const payload = body.payload;
    const selected = this.#selector(name, body);
    const op = ++c.version;
    for (const p of selected) {
      if (key) setAtPath(p.payload, key, payload);
      else if (overwrite) p.payload = structuredClone(payload);
      else mergePayload(p.payload, payload);
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  #deletePayload(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    if (!Array.isArray(body.keys) || !body.keys.every((k) => typeof k === 'string')) {
      throw new DoubleUnsupported('Format error: keys must be a list of strings');
    }
    const paths = body.keys.map((k) => parsePayloadPath(k));
    const selected = this.#selector(name, body);
    const op = ++c.version;
    for (const p of selected) {
      for (const path of paths) removeAtPath(p.payload, path);
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  #clearPayload(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    const selected = this.#selector(name, body);
    const op = ++c.version;
    for (const p of selected) {
      p.payload = {};
      p.version = op;
    }
    return { operation_id: op, status: 'completed' };
  }

  #retrieve(name: string, body: Record<string, unknown>): unknown[] {
    const c = this.#collection(name);
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

  #scroll(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    const limit = uint(body.limit, 10, 'limit');
    let points = this.#select(name, body.filter);
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

  #facet(name: string, body: Record<string, unknown>): unknown {
    if (typeof body.key !== 'string') throw new DoubleUnsupported('Format error: key');
    const c = this.#collection(name);
    if (!c.payloadSchema[body.key]) {
      throw new DoubleUnsupported(`Bad request: Index required but not found for "${body.key}"`);
    }
    const counts = new Map<string, { value: unknown; count: number }>();
    for (const p of this.#select(name, body.filter)) {
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
    const hits = [...counts.values()].sort(
      (a, b) => b.count - a.count || String(a.value).localeCompare(String(b.value)),
    );
    return { hits: hits.slice(0, uint(body.limit, 10, 'limit')) };
  }

  /** Runs a query (with its prefetches) and returns scored points. */
  #query(name: string, body: Record<string, unknown>): unknown[] {
    const c = this.#collection(name);
    const scored = this.#runQuery(c, name, body, true);
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
  #runQuery(
    c: Collection,
    name: string,
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
        const r = this.#runQuery(c, name, pf, false);
        prefetched.push(r.slice(0, uint(pf.limit, 10, 'limit')));
      }
      const byKey = new Map<string, StoredPoint>();
      for (const list of prefetched) for (const { p } of list) byKey.set(p.idKey, p);
      candidates = [...byKey.values()].filter((p) => matchesFilter(body.filter, view(c, p)));
    } else {
      candidates = this.#select(name, body.filter);
    }
    const using = typeof body.using === 'string' ? body.using : '';
    const lookup = this.#lookup(c, body.lookup_from, using);
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
    if (c.sparse.has(using)) return this.#sparseSearch(c, name, q, using, candidates, idf, body.score_threshold);
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
    const better =
      kind === 'score' || higherIsBetter ? (a: number, b: number) => b - a : (a: number, b: number) => a - b;
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
  #sparseSearch(
    c: Collection,
    name: string,
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
        idf === undefined || idf === 'global' ? [...c.points.values()] : this.#select(name, idf.corpus)
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

  #lookup(c: Collection, from: unknown, using: string): { collection: Collection; using: string; same: boolean } {
    if (from === undefined || from === null) return { collection: c, using, same: true };
    if (!isObject(from) || typeof from.collection !== 'string')
      throw new DoubleUnsupported('Format error: lookup_from');
    onlyKeys(from, ['collection', 'vector'], 'lookup_from');
    const other = this.#collection(from.collection);
    return { collection: other, using: typeof from.vector === 'string' ? from.vector : '', same: other === c };
  }

  #groups(name: string, body: Record<string, unknown>): unknown {
    const c = this.#collection(name);
    if (typeof body.group_by !== 'string') throw new DoubleUnsupported('Format error: group_by');
    if (body.with_lookup !== undefined && body.with_lookup !== null) {
      throw new DoubleUnsupported('QdrantProtocolDouble does not implement with_lookup');
    }
    const groupSize = uint(body.group_size, 3, 'group_size');
    const limit = uint(body.limit, 10, 'limit');
    const groups = new Map<string, { id: unknown; hits: unknown[] }>();
    for (const { p, score } of this.#runQuery(c, name, body, true)) {
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

  #matrix(name: string, body: Record<string, unknown>) {
    const c = this.#collection(name);
    const using = typeof body.using === 'string' ? body.using : '';
    const params = c.vectors.get(using);
    if (!params) throw new DoubleUnsupported(`Wrong input: Not existing vector name error: ${using}`);
    const sample = this.#select(name, body.filter)
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
}

const QUERY_FIELDS = [
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

function sparseVector(v: unknown): SparseVector {
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

function parseId(s: string): number | string {
  return /^\d+$/.test(s) ? Number(s) : s;
}

function uint(v: unknown, dflt: number, what: string): number {
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
function indexedOf(c: Collection): ReadonlySet<string> {
  const keys = Object.keys(c.payloadSchema).join('\n');
  const hit = indexedSets.get(c.payloadSchema);
  if (hit && hit.keys === keys) return hit.set;
  const set = new Set(Object.keys(c.payloadSchema).map(indexedPath));
  indexedSets.set(c.payloadSchema, { keys, set });
  return set;
}

function view(c: Collection, p: StoredPoint): EvalPoint {
  return {
    idKey: p.idKey,
    payload: p.payload,
    vectorNames: [...p.vectors.keys(), ...p.sparse.keys()],
    indexed: indexedOf(c),
  };
}

function compareKeys(a: string, b: string): number {
  const an = a.startsWith('n:');
  const bn = b.startsWith('n:');
  if (an && bn) return Number(a.slice(2)) - Number(b.slice(2));
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function byId(a: StoredPoint, b: StoredPoint): number {
  return compareKeys(a.idKey, b.idKey);
}

function record(c: Collection, p: StoredPoint, withPayload: unknown, withVector: unknown): Record<string, unknown> {
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

function normalise(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return n === 0 ? [...v] : v.map((x) => x / n);
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
