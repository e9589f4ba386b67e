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
 * - `set_payload` merges like Qdrant (a null value removes the key);
 * - user-defined sharding (`sharding_method: "custom"`, `PUT|GET /collections/{c}/shards`): ids are
 *   unique per shard key; a read with `shard_key` sees only those keys, a read without one sees
 *   every key; a write must name one existing shard key (400 otherwise).
 *
 * Not implemented (400): multi vectors, shard key fallback, writes to several shard keys, reads
 * over shard keys holding the same id, geo/datetime/text conditions, values_count,
 * order_by, formula, mmr, relevance feedback, dbsf fusion, snapshots, aliases. Exact
 * (brute-force) search only; `params` is validated, and only `idf` changes a result.
 *
 * This file is the HTTP server and its routing; the collections and writes are in
 * ./qdrant-store.ts, the reads that filter, score and count in ./qdrant-query.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DoubleUnsupported } from './qdrant-filter.ts';
import { count, facet, groups, matrix, QUERY_FIELDS, query, scroll } from './qdrant-query.ts';
import { type Collection, HttpError, isObject, onlyKeys, QdrantStore } from './qdrant-store.ts';

export { DoubleUnsupported } from './qdrant-filter.ts';

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
  readonly #store = new QdrantStore();
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
    // The collection as one request sees it: the shard keys it selects (custom sharding), all of
    // them for a read without shard_key; a write must name exactly one (as in Qdrant).
    const read = (body: Record<string, unknown>) => this.#store.view(name as string, body.shard_key, false);
    const write = (body: Record<string, unknown>) => this.#store.view(name as string, body.shard_key, true);
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
      return { collections: this.#store.names().map((name) => ({ name })) };
    }
    const name = parts[1];
    if (parts[0] !== 'collections' || name === undefined) throw new HttpError(404, `Not found: ${url.pathname}`);
    switch (key) {
      case 'PUT /collections/{c}':
        params(['timeout']);
        return this.#store.createCollection(
          name,
          b(['vectors', 'sparse_vectors', 'shard_number', 'sharding_method'], 'create_collection'),
        );
      case 'GET /collections/{c}':
        return this.#store.info(name);
      case 'GET /collections/{c}/exists':
        return { exists: this.#store.has(name) };
      case 'DELETE /collections/{c}':
        params(['timeout']);
        return this.#store.drop(name);
      case 'PUT /collections/{c}/shards':
        params(['timeout']);
        return this.#store.createShardKey(
          name,
          b(['shard_key', 'shards_number', 'replication_factor'], 'create_sharding_key'),
        );
      case 'GET /collections/{c}/shards':
        // List shard keys (Qdrant 1.17+): https://api.qdrant.tech/v-1-19-x/api-reference/distributed/list-shard-keys
        // `shard_keys` is "only available when sharding method is custom" (null otherwise).
        params([]);
        return this.#store.listShardKeys(name);
      case 'POST /collections/{c}/shards/delete':
        params(['timeout']);
        return this.#store.deleteShardKey(name, b(['shard_key'], 'drop_sharding_key'));
      case 'PUT /collections/{c}/index':
        params(['wait', 'ordering']);
        return this.#store.createIndex(name, b(['field_name', 'field_schema'], 'create_index'));
      case 'PUT /collections/{c}/points':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.upsert(
          ...withView(write, b(['points', 'batch', 'update_filter', 'update_mode', 'shard_key'], 'upsert')),
        );
      case 'POST /collections/{c}/points':
        params(['consistency', 'timeout']);
        return this.#store.retrieve(
          ...withView(read, b(['ids', 'with_payload', 'with_vector', 'shard_key'], 'retrieve')),
        );
      case 'POST /collections/{c}/points/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.deletePoints(...withView(write, b(['points', 'filter', 'shard_key'], 'delete')));
      case 'PUT /collections/{c}/points/vectors':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.updateVectors(
          ...withView(write, b(['points', 'update_filter', 'shard_key'], 'update_vectors')),
        );
      case 'POST /collections/{c}/points/vectors/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.deleteVectors(
          ...withView(write, b(['points', 'filter', 'vector', 'shard_key'], 'delete_vectors')),
        );
      case 'POST /collections/{c}/points/payload':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.setPayload(
          ...withView(write, b(['payload', 'points', 'filter', 'key', 'shard_key'], 'set_payload')),
          false,
        );
      case 'PUT /collections/{c}/points/payload':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.setPayload(
          ...withView(write, b(['payload', 'points', 'filter', 'shard_key'], 'overwrite_payload')),
          true,
        );
      case 'POST /collections/{c}/points/payload/delete':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.deletePayload(
          ...withView(write, b(['keys', 'points', 'filter', 'shard_key'], 'delete_payload')),
        );
      case 'POST /collections/{c}/points/payload/clear':
        params(['wait', 'ordering', 'timeout']);
        return this.#store.clearPayload(...withView(write, b(['points', 'filter', 'shard_key'], 'clear_payload')));
      case 'POST /collections/{c}/points/scroll':
        params(['consistency', 'timeout']);
        return scroll(
          this.#store,
          ...withView(read, b(['filter', 'limit', 'offset', 'with_payload', 'with_vector', 'shard_key'], 'scroll')),
        );
      case 'POST /collections/{c}/points/count':
        params(['timeout']);
        return count(this.#store, ...withView(read, b(['filter', 'exact', 'shard_key'], 'count')));
      case 'POST /collections/{c}/facet':
        params(['consistency', 'timeout']);
        return facet(this.#store, ...withView(read, b(['key', 'filter', 'limit', 'exact', 'shard_key'], 'facet')));
      case 'POST /collections/{c}/points/query':
        params(['consistency', 'timeout']);
        return { points: query(this.#store, ...withView(read, b(QUERY_FIELDS, 'query'))) };
      case 'POST /collections/{c}/points/query/batch': {
        params(['consistency', 'timeout']);
        const { searches } = b(['searches'], 'query_batch');
        if (!Array.isArray(searches)) throw new DoubleUnsupported('Format error: searches must be a list');
        return searches.map((s) => {
          if (!isObject(s)) throw new DoubleUnsupported('Format error: a search must be an object');
          onlyKeys(s, QUERY_FIELDS, 'query');
          return { points: query(this.#store, read(s), s) };
        });
      }
      case 'POST /collections/{c}/points/query/groups':
        params(['consistency', 'timeout']);
        return groups(
          this.#store,
          ...withView(read, b([...QUERY_FIELDS, 'group_by', 'group_size', 'with_lookup'], 'query_groups')),
        );
      case 'POST /collections/{c}/points/search/matrix/pairs':
      case 'POST /collections/{c}/points/search/matrix/offsets': {
        params(['consistency', 'timeout']);
        const m = matrix(
          this.#store,
          ...withView(read, b(['filter', 'sample', 'limit', 'using', 'shard_key'], 'search_matrix')),
        );
        if (parts[5] === 'pairs') return { pairs: m.pairs };
        return m.offsets;
      }
      default:
        if (method === 'GET' && parts[2] === 'points' && parts.length === 4) {
          return (
            this.#store.retrieve(read({}), { ids: [parseId(parts[3]!)], with_payload: true, with_vector: true })[0] ??
            null
          );
        }
        throw new HttpError(404, `QdrantProtocolDouble does not implement ${method} ${url.pathname}`);
    }
  }
}

/** `[view, body]` for a store call: the collection as the body's shard_key selects it. */
function withView(
  view: (body: Record<string, unknown>) => Collection,
  body: Record<string, unknown>,
): [Collection, Record<string, unknown>] {
  return [view(body), body];
}

function parseId(s: string): number | string {
  return /^\d+$/.test(s) ? Number(s) : s;
}
