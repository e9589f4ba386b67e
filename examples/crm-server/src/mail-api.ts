/**
 * A small local mail API for the example's `send_email` tool: `POST /v1/send` with
 * `Authorization: Bearer <api key>` and `{ to, subject, body }`. It accepts only keys it was told
 * about (`allowKey`), answers 401 otherwise, and records which key each request used, so the demo
 * and the tests can show that each tenant's call carried its own key. Loopback only; not a mail server.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface MailRequest {
  id: string;
  /** The bearer key the request carried (kept in memory only, for the checks). */
  key: string;
  /** Which known key owner it belonged to, or null for an unknown/revoked key. */
  owner: string | null;
  to: string;
  subject: string;
  status: number;
}

export interface MailApi {
  url: string;
  /** Every request received, in order. */
  readonly requests: readonly MailRequest[];
  /** Accepts `key` as belonging to `owner` (e.g. a tenant id). */
  allowKey(owner: string, key: string): void;
  /** Stops accepting `key` (a revoked, rotated-out key). */
  revokeKey(key: string): void;
  stop(): Promise<void>;
}

export async function startMailApi(): Promise<MailApi> {
  const keys = new Map<string, string>();
  const requests: MailRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.statusCode = status;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/send') return reply(404, { error: 'not_found' });
    let raw = '';
    for await (const chunk of req) {
      raw += chunk;
      if (raw.length > 64 * 1024) return reply(413, { error: 'too_large' });
    }
    let body: { to?: unknown; subject?: unknown };
    try {
      body = JSON.parse(raw);
    } catch {
      return reply(400, { error: 'bad_json' });
    }
    const m = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''));
    const key = m?.[1] ?? '';
    const owner = keys.get(key) ?? null;
    const id = randomUUID();
    const status = owner ? 202 : 401;
    requests.push({ id, key, owner, to: String(body.to ?? ''), subject: String(body.subject ?? ''), status });
    if (!owner) return reply(401, { error: 'invalid_api_key' });
    return reply(202, { id, status: 'queued' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    allowKey: (owner, key) => void keys.set(key, owner),
    revokeKey: (key) => void keys.delete(key),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
