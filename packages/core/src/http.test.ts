import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, TenantScopeError } from './errors.ts';
import {
  bearer,
  errorResult,
  idOf,
  isInitialize,
  jsonRpcError,
  readJson,
  resourcePaths,
  sendAuthError,
  sendBodyError,
  sendJson,
  sendUnavailable,
  toolRefusal,
} from './http.ts';

/** Codes the MCP SDK gives a meaning of its own (e.g. -32001 RequestTimeout). */
const SDK_CODES = new Set(Object.values(ErrorCode).filter((v): v is number => typeof v === 'number'));

describe('error answers', () => {
  it('maps every code to its status and a JSON-RPC code; auth, scope and rate refusals use none the SDK uses', () => {
    const seen = new Map<number, Set<number>>();
    for (const [code, status] of Object.entries(ERROR_CODES)) {
      const e = new TenantScopeError(code, 'm');
      expect(e.status).toBe(status);
      const answer = jsonRpcError(1, e);
      expect(answer.error.data).toEqual({ code });
      expect(answer.error.message).toBe(`${code}: m`);
      seen.set(status, (seen.get(status) ?? new Set()).add(answer.error.code));
      if (status === 401 || status === 403 || status === 429) expect(SDK_CODES.has(answer.error.code)).toBe(false);
    }
    expect(seen.get(401)).toEqual(new Set([-32010]));
    expect(seen.get(403)).toEqual(new Set([-32011]));
    expect(seen.get(429)).toEqual(new Set([-32029]));
    expect(seen.get(400)).toEqual(new Set([-32602]));
    expect(seen.get(404)).toEqual(new Set([-32602]));
    expect(seen.get(500)).toEqual(new Set([-32603]));
    expect(SDK_CODES.has(-32001)).toBe(true); // the collision this guards against
  });

  it('keeps only string or number ids', () => {
    const e = new TenantScopeError('BAD_REQUEST', 'm');
    expect(jsonRpcError('a', e).id).toBe('a');
    expect(jsonRpcError({ evil: 1 }, e).id).toBeNull();
    expect(toolRefusal([1], e).id).toBeNull();
  });

  it('answers a refused call as an isError tool result with _meta.code, never with the cause', () => {
    const e = new TenantScopeError('TENANT_OVERRIDE', 'refused', { cause: new Error('globex row') });
    expect(errorResult(e)).toEqual({
      content: [{ type: 'text', text: 'TENANT_OVERRIDE: refused' }],
      isError: true,
      _meta: { code: 'TENANT_OVERRIDE' },
    });
    expect(toolRefusal(3, e)).toEqual({ jsonrpc: '2.0', id: 3, result: errorResult(e) });
  });
});

describe('reading a request', () => {
  const req = (authorization?: string) => ({ headers: { authorization } }) as unknown as IncomingMessage;

  it('takes a bearer token, or none, and refuses any other Authorization', () => {
    expect(bearer(req())).toBe('');
    expect(bearer(req('Bearer abc.def'))).toBe('abc.def');
    expect(bearer(req('bearer  abc '))).toBe('abc');
    for (const bad of ['Basic abc', 'Bearer', 'Bearer a b', 'Bearerabc']) {
      expect(() => bearer(req(bad)), bad).toThrow(expect.objectContaining({ code: 'AUTH_MALFORMED' }));
    }
  });

  it('finds initialize in a message or a batch, and the id of a single message', () => {
    expect(isInitialize({ method: 'initialize' })).toBe(true);
    expect(isInitialize([{ method: 'ping' }, { method: 'initialize' }])).toBe(true);
    expect(isInitialize({ method: 'tools/call' })).toBe(false);
    expect(idOf({ id: 4 })).toBe(4);
    expect(idOf([{ id: 4 }])).toBeNull();
  });

  it('derives the endpoint and metadata paths from the audience', () => {
    expect(resourcePaths('https://mcp.example.com/mcp')).toEqual({
      mcpPath: '/mcp',
      metadataPath: '/.well-known/oauth-protected-resource/mcp',
      metadataUrl: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
    });
    expect(resourcePaths('https://mcp.example.com')).toMatchObject({
      mcpPath: '/',
      metadataPath: '/.well-known/oauth-protected-resource',
    });
  });
});

describe('over HTTP (loopback)', () => {
  let url: string;
  let handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
  const server = createServer((req, res) => void handler(req, res));
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const META = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp';

  it('sends JSON with its length and no-store', async () => {
    handler = (_q, res) => sendJson(res, 200, { ok: 'é' });
    const r = await fetch(url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength('{"ok":"é"}')));
  });

  it('answers auth failures 401 with WWW-Authenticate naming the metadata, scope failures 403', async () => {
    const cases = [
      ['AUTH_MISSING', 401, `Bearer resource_metadata="${META}"`],
      [
        'AUTH_EXPIRED',
        401,
        `Bearer error="invalid_token", error_description="AUTH_EXPIRED", resource_metadata="${META}"`,
      ],
      [
        'INSUFFICIENT_SCOPE',
        403,
        `Bearer error="insufficient_scope", error_description="INSUFFICIENT_SCOPE", resource_metadata="${META}"`,
      ],
      [
        'TENANT_HALTED',
        403,
        `Bearer error="insufficient_scope", error_description="TENANT_HALTED", resource_metadata="${META}"`,
      ],
    ] as const;
    for (const [code, status, challenge] of cases) {
      handler = (_q, res) => sendAuthError(res, new TenantScopeError(code, 'no'), META);
      const r = await fetch(url);
      expect([code, r.status, r.headers.get('www-authenticate')]).toEqual([code, status, challenge]);
      const body = (await r.json()) as { error: { code: number; data: { code: string } } };
      expect(body.error.data.code).toBe(code);
      expect(SDK_CODES.has(body.error.code)).toBe(false);
    }
  });

  it('answers a rate-limited credential 429 with Retry-After and no challenge', async () => {
    handler = (_q, res) =>
      sendAuthError(res, new TenantScopeError('AUTH_RATE_LIMITED', 'slow down', { status: 429 }), META);
    const r = await fetch(url);
    expect([r.status, r.headers.get('retry-after'), r.headers.get('www-authenticate')]).toEqual([429, '60', null]);
    const body = (await r.json()) as { error: { code: number; data: { code: string } } };
    expect(body.error.data.code).toBe('AUTH_RATE_LIMITED');
    expect(SDK_CODES.has(body.error.code)).toBe(false);
  });

  it('answers 503 with Retry-After while unavailable', async () => {
    handler = (_q, res) => sendUnavailable(res, 'shutting down');
    const r = await fetch(url);
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(await r.json()).toMatchObject({ error: { data: { code: 'UNAVAILABLE' } } });
  });

  it('reads a JSON body up to the bound: REQUEST_TOO_LARGE past it, BAD_REQUEST (-32700) when not JSON', async () => {
    handler = async (q, res) => {
      try {
        sendJson(res, 200, await readJson(q, 64));
      } catch (err) {
        sendBodyError(res, err as TenantScopeError);
      }
    };
    const post = (body: string) => fetch(url, { method: 'POST', body });
    expect(await (await post('{"a":1}')).json()).toEqual({ a: 1 });
    const big = await post(JSON.stringify({ a: 'x'.repeat(100) }));
    expect([big.status, await big.json()]).toEqual([
      413,
      { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'request body is too large' } },
    ]);
    const bad = await post('{not json');
    expect([bad.status, ((await bad.json()) as { error: { code: number } }).error.code]).toEqual([400, -32700]);
  });
});
