/**
 * A recording HTTP proxy for Qdrant's REST API: forwards every request to a real Qdrant (or the
 * protocol double) unchanged and keeps what was sent, so a suite can assert wire-level
 * invariants (`qdrantWireViolations`: for example "every filter carries the tenant condition at
 * its top-level must").
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parsePayloadPath } from './qdrant-path.ts';

/** One request as it went over the wire. */
export interface RecordedQdrantRequest {
  method: string;
  /** Path without the query string, e.g. `/collections/docs/points/query`. */
  path: string;
  /** Query parameters, e.g. `{ wait: 'true' }`. */
  query: Record<string, string>;
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown;
  /** The upstream's HTTP status. */
  status: number;
}

export interface QdrantRecordingProxy {
  /** Point the client here. */
  readonly url: string;
  /** Every request since start (or the last `clear()`), in order. */
  readonly requests: readonly RecordedQdrantRequest[];
  clear(): void;
  close(): Promise<void>;
}

/** Starts a recording proxy on loopback in front of `targetUrl`. */
export async function startQdrantRecordingProxy(targetUrl: string): Promise<QdrantRecordingProxy> {
  const target = new URL(targetUrl);
  const base = target.pathname.replace(/\/$/, '');
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  const requests: RecordedQdrantRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const u = new URL(req.url ?? '/', 'http://proxy');
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = raw.toString('utf8');
      }
    }
    const entry: RecordedQdrantRequest = {
      method: req.method ?? 'GET',
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      body,
      status: 0,
    };
    requests.push(entry);
    const headers = { ...req.headers, host: target.host };
    const up = send(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: `${base}${u.pathname}${u.search}`,
        headers,
      },
      (upRes) => {
        entry.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', (err) => {
      entry.status = 502;
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: { error: `recording proxy: ${err.message}` }, time: 0 }));
    });
    up.end(raw);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    clear() {
      requests.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface QdrantWireInvariantOptions {
  /** The tenant the requests were sent for. */
  tenant: string;
  /** The payload field that holds the tenant id. Default `tenant_id`. */
  field?: string;
  /**
   * Sparse vectors with the IDF modifier: every query level that searches one must carry
   * `params.idf = {corpus: tenant filter}`. Without it only the shape of a present `idf` is checked.
   */
  idfVectors?: ReadonlySet<string>;
  /**
   * The tenant's shard key in a custom-sharded collection (the shard-key tier): every points
   * request to `collection` (every search of a batch too) must carry `shard_key` = `key`. Without
   * it no request may carry a `shard_key` at all.
   */
  shardKey?: { collection: string; key: string };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const NO_SEARCH = ['order_by', 'fusion', 'rrf', 'sample', 'formula'];

/**
 * The wire-level invariant of a tenant-scoped Qdrant client, over recorded requests. Every
 * request carries the tenant condition at the top-level `must` of every filter (request,
 * `update_filter`, every prefetch at every depth, every search of a batch); points endpoints
 * that take no filter are never used; every upserted or overwritten payload carries the tenant;
 * no `key`/`keys` path (in Qdrant's JSON-path grammar, quoted keys included) starts at the tenant
 * field and no set payload names it; `count` and `facet` are exact (an estimate spans tenants);
 * a `params.idf` is only ever the tenant corpus, and is present on every search of an IDF
 * vector. Returns the violations (empty when it holds).
 */
export function qdrantWireViolations(
  requests: readonly RecordedQdrantRequest[],
  options: QdrantWireInvariantOptions,
): string[] {
  const { tenant, idfVectors } = options;
  const field = options.field ?? 'tenant_id';
  const out: string[] = [];
  const cond = JSON.stringify({ key: field, match: { value: tenant } });
  const hasCond = (f: unknown) => isObj(f) && Array.isArray(f.must) && f.must.some((c) => JSON.stringify(c) === cond);
  const checkFilter = (f: unknown, where: string) => {
    if (!hasCond(f)) out.push(`${where}: filter without the tenant condition at top-level must`);
  };
  const checkPath = (p: unknown, where: string) => {
    let first: string | undefined;
    try {
      const steps = parsePayloadPath(p);
      first = 'key' in steps[0]! ? steps[0].key : undefined;
    } catch {
      out.push(`${where}: ${JSON.stringify(p)} is not a valid payload path`);
      return;
    }
    if (first === field) out.push(`${where}: ${JSON.stringify(p)} starts at the tenant field`);
  };
  const searches = (q: Record<string, unknown>) => {
    const v = q.query;
    if (v === undefined || v === null) return false;
    return !(isObj(v) && NO_SEARCH.some((k) => v[k] !== undefined && v[k] !== null));
  };
  const checkQuery = (q: unknown, where: string) => {
    if (!isObj(q)) {
      out.push(`${where}: not an object`);
      return;
    }
    checkFilter(q.filter, where);
    const idf = isObj(q.params) ? q.params.idf : undefined;
    if (idf !== undefined) {
      if (!isObj(idf) || Object.keys(idf).join() !== 'corpus' || JSON.stringify(idf.corpus) !== `{"must":[${cond}]}`) {
        out.push(`${where}: params.idf other than the tenant corpus`);
      }
    } else if (idfVectors && typeof q.using === 'string' && idfVectors.has(q.using) && searches(q)) {
      out.push(`${where}: a search of IDF vector ${JSON.stringify(q.using)} without the tenant corpus`);
    }
    const pf = q.prefetch === undefined || q.prefetch === null ? [] : [q.prefetch].flat();
    pf.forEach((p, i) => {
      checkQuery(p, `${where} prefetch[${i}]`);
    });
  };
  const shard = options.shardKey;
  const checkShardKey = (body: Record<string, unknown>, path: string, where: string) => {
    const collection = /^\/collections\/([^/]+)\//.exec(path)?.[1];
    const expected = shard && collection !== undefined && decodeURIComponent(collection) === shard.collection;
    if (expected && body.shard_key !== shard.key) out.push(`${where}: without the tenant's shard_key`);
    if (!expected && body.shard_key !== undefined)
      out.push(`${where}: a shard_key outside the tenant's shard-key tier`);
  };
  for (const r of requests) {
    const at = `${r.method} ${r.path}`;
    const b = isObj(r.body) ? r.body : {};
    if (r.method !== 'GET' && r.path !== '/') {
      if (r.path.endsWith('/points/query/batch') && Array.isArray(b.searches)) {
        b.searches.forEach((s, i) => {
          checkShardKey(isObj(s) ? s : {}, r.path, `${at} searches[${i}]`);
        });
      } else {
        checkShardKey(b, r.path, at);
      }
    }
    const rest = at.replace(/^(\w+) \/collections\/[^/]+/, '$1 ');
    switch (rest) {
      case 'GET ':
        // `GET /` (version) and `GET /collections/{c}` (config: which vectors use IDF) read no points.
        if (r.path !== '/' && !/^\/collections\/[^/]+$/.test(r.path)) out.push(`${at}: unexpected`);
        break;
      case 'POST /points/query':
      case 'POST /points/query/groups':
        checkQuery(b, at);
        break;
      case 'POST /points/query/batch':
        if (!Array.isArray(b.searches)) out.push(`${at}: no searches`);
        else {
          b.searches.forEach((s, i) => {
            checkQuery(s, `${at} searches[${i}]`);
          });
        }
        break;
      case 'POST /points/count':
      case 'POST /facet':
        checkFilter(b.filter, at);
        if (b.exact !== true) out.push(`${at}: not exact (an estimate counts every tenant)`);
        break;
      case 'POST /points/payload':
      case 'PUT /points/payload':
        checkFilter(b.filter, at);
        if (b.points !== undefined) out.push(`${at}: selects points by id without a filter`);
        if (b.key !== undefined && b.key !== null) checkPath(b.key, `${at} key`);
        if (isObj(b.payload) && r.method === 'PUT' && b.payload[field] !== tenant) {
          out.push(`${at}: an overwritten payload without the tenant`);
        }
        if (isObj(b.payload) && r.method === 'POST' && Object.hasOwn(b.payload, field)) {
          out.push(`${at}: a set payload naming the tenant field`);
        }
        break;
      case 'POST /points/payload/delete':
        checkFilter(b.filter, at);
        if (b.points !== undefined) out.push(`${at}: selects points by id without a filter`);
        for (const k of Array.isArray(b.keys) ? b.keys : [undefined]) checkPath(k, `${at} keys`);
        break;
      case 'POST /points/scroll':
      case 'POST /points/search/matrix/pairs':
      case 'POST /points/search/matrix/offsets':
      case 'POST /points/delete':
      case 'POST /points/vectors/delete':
      case 'POST /points/payload/clear':
        checkFilter(b.filter, at);
        if (b.points !== undefined) out.push(`${at}: selects points by id without a filter`);
        break;
      case 'PUT /points':
        checkFilter(b.update_filter, `${at} update_filter`);
        for (const p of Array.isArray(b.points) ? b.points : []) {
          if (!isObj(p) || !isObj(p.payload) || p.payload[field] !== tenant)
            out.push(`${at}: a point without the tenant payload`);
        }
        if (b.batch !== undefined) out.push(`${at}: batch form`);
        break;
      case 'PUT /points/vectors':
        checkFilter(b.update_filter, `${at} update_filter`);
        break;
      default:
        if (r.path === '/') break;
        out.push(`${at}: an endpoint the scoped client must not use`);
    }
  }
  return out;
}
