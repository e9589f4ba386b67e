import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { cliError } from '../errors.ts';

/** Largest response body kept (and shown in evidence), in bytes. */
const MAX_BODY = 16 * 1024;
export const PROTOCOL_VERSION = '2025-06-18';

/** One HTTP exchange as evidence: never the bearer token, only what kind it was. */
export interface Exchange {
  request: { method: string; url: string; auth: string; session: string | null; body: unknown };
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON-RPC message (from JSON or the last SSE `data:`), else the text (bounded). */
  body: unknown;
}

function isUnreachable(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return (
    (err as Error)?.name === 'TimeoutError' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'ENOTFOUND'
  );
}

export class Http {
  readonly url: string;
  readonly timeoutMs: number;
  constructor(url: string, timeoutMs: number) {
    this.url = url;
    this.timeoutMs = timeoutMs;
  }

  /** POST one JSON-RPC message. `token` null: no Authorization header. `label` names the token kind in evidence. */
  async post(
    body: unknown,
    token: string | null,
    label: string,
    session?: string | null,
    protocol = PROTOCOL_VERSION,
  ): Promise<Exchange & { sessionId: string | null }> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (session) {
      headers['mcp-session-id'] = session;
      headers['mcp-protocol-version'] = protocol;
    }
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      if (isUnreachable(cause)) throw cliError('CLI_TARGET_UNREACHABLE', `${this.url} did not answer`, { cause });
      throw cause;
    }
    const text = (await res.text()).slice(0, MAX_BODY);
    return {
      request: {
        method: 'POST',
        url: this.url,
        auth: token === null ? 'none' : `Bearer <${label}>`,
        session: session ?? null,
        body,
      },
      status: res.status,
      headers: pickHeaders(res.headers),
      body: parseBody(text, res.headers.get('content-type') ?? ''),
      sessionId: res.headers.get('mcp-session-id'),
    };
  }

  /** GET a URL (the metadata document). */
  async get(url: string): Promise<Exchange> {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (cause) {
      if (isUnreachable(cause)) throw cliError('CLI_TARGET_UNREACHABLE', `${url} did not answer`, { cause });
      throw cause;
    }
    const text = (await res.text()).slice(0, MAX_BODY);
    return {
      request: { method: 'GET', url, auth: 'none', session: null, body: null },
      status: res.status,
      headers: pickHeaders(res.headers),
      body: parseBody(text, res.headers.get('content-type') ?? ''),
    };
  }

  /** initialize + notifications/initialized; the session id is null for a stateless server. */
  async initialize(
    token: string,
    label: string,
  ): Promise<{ sessionId: string | null; exchange: Exchange; ok: boolean }> {
    const init = await this.post(initializeMessage(), token, label);
    const ok = init.status === 200 && hasResult(init.body);
    if (ok) {
      await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' }, token, label, init.sessionId);
    }
    return { sessionId: init.sessionId, exchange: init, ok };
  }

  /** Ends a session (best effort). */
  async end(sessionId: string | null, token: string): Promise<void> {
    if (!sessionId) return;
    await fetch(this.url, {
      method: 'DELETE',
      headers: {
        authorization: `Bearer ${token}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': PROTOCOL_VERSION,
      },
      signal: AbortSignal.timeout(this.timeoutMs),
    }).catch(() => undefined);
  }

  /** An official MCP SDK client over Streamable HTTP with this bearer token. */
  async client(token: string): Promise<Client> {
    const client = new Client({ name: 'tenantscope-check', version: '0.1.0' });
    const transport = new StreamableHTTPClientTransport(new URL(this.url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    try {
      await client.connect(transport, { timeout: this.timeoutMs });
    } catch (cause) {
      if (isUnreachable(cause)) throw cliError('CLI_TARGET_UNREACHABLE', `${this.url} did not answer`, { cause });
      throw cause;
    }
    return client;
  }
}

let nextId = 1;
export function rpc(method: string, params?: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) };
}

export function initializeMessage(): Record<string, unknown> {
  return rpc('initialize', {
    protocolVersion: PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: 'tenantscope-check', version: '0.1.0' },
  });
}

export function hasResult(body: unknown): boolean {
  return typeof body === 'object' && body !== null && 'result' in body;
}

const KEPT_HEADERS = ['content-type', 'www-authenticate', 'mcp-session-id', 'retry-after'];
function pickHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of KEPT_HEADERS) {
    const v = h.get(k);
    if (v !== null) out[k] = k === 'mcp-session-id' ? '<session id>' : v;
  }
  return out;
}

function parseBody(text: string, contentType: string): unknown {
  try {
    if (contentType.includes('application/json') && text) return JSON.parse(text);
    if (contentType.includes('text/event-stream')) {
      const data = text
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .filter(Boolean);
      if (data.length) return JSON.parse(data[data.length - 1] as string);
    }
  } catch {
    // not JSON after all: keep the text
  }
  return text;
}
