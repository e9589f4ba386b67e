/**
 * A recording HTTP proxy for Qdrant's REST API: forwards every request to a real Qdrant (or the
 * protocol double) unchanged and keeps what was sent, so a suite can assert wire-level
 * invariants (for example "every filter carries the tenant condition at its top-level must").
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';

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
