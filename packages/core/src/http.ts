import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { jsonRpcCodeFor, TenantScopeError } from './errors.ts';
import type { Tenant } from './tenant.ts';
import type { TokenVerifier } from './verifier.ts';

/** The paths this server answers, derived from the audience URI (the resource it protects). */
export interface ResourcePaths {
  /** The MCP endpoint: the audience's path. */
  readonly mcpPath: string;
  /** RFC 9728 protected resource metadata, for that path. */
  readonly metadataPath: string;
  /** The metadata's absolute URL, named in `WWW-Authenticate`. */
  readonly metadataUrl: string;
}

export function resourcePaths(audience: string): ResourcePaths {
  const url = new URL(audience);
  const mcpPath = url.pathname === '' ? '/' : url.pathname;
  const metadataPath = `/.well-known/oauth-protected-resource${mcpPath === '/' ? '' : mcpPath}`;
  return { mcpPath, metadataPath, metadataUrl: `${url.origin}${metadataPath}` };
}

/** RFC 9728 metadata for the verifier's resource. */
export function protectedResourceMetadata(verifier: TokenVerifier, name: string | undefined): Record<string, unknown> {
  return {
    resource: verifier.audience,
    authorization_servers: [...verifier.issuers],
    bearer_methods_supported: ['header'],
    resource_name: name ?? 'tenantscope MCP server',
  };
}

// --- reading a request ------------------------------------------------------------------------

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The bearer token ('' when there is no Authorization header, so the verifier says AUTH_MISSING). */
export function bearer(req: IncomingMessage): string {
  const auth = header(req, 'authorization');
  if (!auth) return '';
  const m = /^Bearer +(\S+) *$/i.exec(auth);
  if (!m?.[1]) throw new TenantScopeError('AUTH_MALFORMED', 'Authorization must be "Bearer <token>"');
  return m[1];
}

/** The JSON body, read up to `max` bytes (REQUEST_TOO_LARGE past it, BAD_REQUEST if not JSON). */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new TenantScopeError('REQUEST_TOO_LARGE', 'request body is too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TenantScopeError('BAD_REQUEST', 'request body is not JSON');
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when the body (a message or a batch) holds an `initialize`. */
export function isInitialize(body: unknown): boolean {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => isRecord(m) && m.method === 'initialize');
}

/** The JSON-RPC id of a single message (null for a batch or none). */
export function idOf(body: unknown): unknown {
  return isRecord(body) ? body.id : null;
}

/** Attaches the verified principal for the SDK transport (read back by the tool handlers). */
export function attachPrincipal<X extends { tenant: Tenant }>(req: IncomingMessage, extra: X): X {
  (req as IncomingMessage & { auth?: unknown }).auth = {
    token: '',
    clientId: extra.tenant.subject,
    scopes: [],
    expiresAt: Math.floor(extra.tenant.expiresAt.getTime() / 1000),
    extra,
  };
  return extra;
}

// --- answers ----------------------------------------------------------------------------------

/** A refused tool call: an `isError` result with the text `CODE: message` and `_meta.code`. */
export function errorResult(e: TenantScopeError): CallToolResult {
  return { content: [{ type: 'text', text: `${e.code}: ${e.message}` }], isError: true, _meta: { code: e.code } };
}

/** A refused tools/call, answered as a tool result: `isError` with `_meta.code`. */
export function toolRefusal(id: unknown, e: TenantScopeError) {
  return { jsonrpc: '2.0' as const, id: jsonRpcId(id), result: errorResult(e) };
}

/** A refused request: a JSON-RPC error whose `data.code` is the stable code. */
export function jsonRpcError(id: unknown, e: TenantScopeError) {
  return {
    jsonrpc: '2.0' as const,
    id: jsonRpcId(id),
    error: { code: jsonRpcCodeFor(e), message: `${e.code}: ${e.message}`, data: { code: e.code } },
  };
}

function jsonRpcId(id: unknown): string | number | null {
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('Cache-Control', 'no-store');
  res.end(text);
}

/** A refusal of the whole request, with its status from the error. */
export function sendError(res: ServerResponse, e: TenantScopeError, id: unknown = null, status = e.status): void {
  sendJson(res, status, jsonRpcError(id, e));
}

/** A body that could not be read: JSON-RPC parse error (-32700). */
export function sendBodyError(res: ServerResponse, e: TenantScopeError): void {
  sendJson(res, e.status, { jsonrpc: '2.0', id: null, error: { code: -32700, message: e.message } });
}

/** 503 with `Retry-After`, so a balancer or client retries (on another replica). */
export function sendUnavailable(res: ServerResponse, message: string): void {
  res.setHeader('Retry-After', '1');
  res.setHeader('Connection', 'close');
  sendError(res, new TenantScopeError('UNAVAILABLE', message));
}

/** 401 (or 403 for a scope refusal) with an RFC 6750 `WWW-Authenticate` naming the metadata. */
export function sendAuthError(res: ServerResponse, e: TenantScopeError, metadataUrl: string): void {
  if (e.status === 429) {
    // Too many failed attempts (AUTH_RATE_LIMITED): not a challenge to present other credentials.
    res.setHeader('Retry-After', '60');
    sendError(res, e, null, 429);
    return;
  }
  const scope = e.code === 'INSUFFICIENT_SCOPE' || e.status === 403;
  const params = [
    e.code === 'AUTH_MISSING' ? null : `error="${scope ? 'insufficient_scope' : 'invalid_token'}"`,
    e.code === 'AUTH_MISSING' ? null : `error_description="${e.code}"`,
    `resource_metadata="${metadataUrl}"`,
  ].filter(Boolean);
  res.setHeader('WWW-Authenticate', `Bearer ${params.join(', ')}`);
  sendError(res, e, null, e.status === 403 ? 403 : 401);
}
