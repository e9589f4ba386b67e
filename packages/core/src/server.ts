import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { type CallToolResult, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import { checkArguments } from './arguments.ts';
import { type AuditEvent, type AuditSink, type AuditStatus, argsHash } from './audit.ts';
import {
  type CallInfo,
  type Logger,
  type LogWriter,
  type Providers,
  type ResourcesOf,
  runInTenantContext,
  stderrLogWriter,
} from './context.ts';
import { watchDelivery } from './delivery.ts';
import { causeRecord } from './diagnostics.ts';
import { effectiveTools, type TenantDirectory, type TenantPolicy } from './directory.ts';
import { isTenantScopeError, jsonRpcCodeFor, TenantScopeError } from './errors.ts';
import { type CallLimiter, MemoryCallLimiter } from './limits.ts';
import { REDACTED, redactDeep } from './redact.ts';
import { UnauthenticatedAuditBound, type UnauthenticatedAuditOptions } from './refusal-audit.ts';
import {
  checkResultCap,
  DEFAULT_MAX_RESULT_BYTES,
  jsonByteLength,
  ResultBudget,
  resultTooLarge,
} from './result-limit.ts';
import { ServerPool, toolSetKey } from './stateless.ts';
import { assertTenant, type Tenant } from './tenant.ts';
import { type ToolDefinition, type ToolResult, toCallToolResult, validateToolDefinition } from './tool.ts';
import type { TokenVerifier } from './verifier.ts';

export interface TenantScopeLimits {
  /** Default tool calls per minute per tenant (a tenant's policy may override). Default 600. */
  callsPerMinute?: number;
  /** Default concurrent tool calls per tenant. Default 32. */
  maxConcurrentCalls?: number;
  /** Default open sessions per tenant; the least recently used is closed past it. Default 16. */
  maxSessionsPerTenant?: number;
  /** Open sessions across all tenants; new sessions are refused (503) past it. Default 10,000. */
  maxSessions?: number;
  /** Idle time after which a session is closed. Default 15 min. */
  sessionIdleTimeoutMs?: number;
  /** Largest request body accepted. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Stateless mode: idle servers kept per tool set for reuse (0: build one per request). Default 64. */
  maxIdleServers?: number;
  /**
   * Largest tool result sent, in bytes of serialised JSON; a tool's own `maxResultBytes` overrides
   * it. A larger result is replaced by a `RESULT_TOO_LARGE` error result. Default 1 MiB.
   */
  maxResultBytes?: number;
}

export interface TenantScopeOptions<P extends Providers> {
  /** Verifies each request's bearer token. */
  verifier: TokenVerifier;
  /** Per-tenant policy (tools, limits). */
  directory: TenantDirectory;
  /** Where audit events go. */
  audit: AuditSink;
  /** Tenant-bound resources plugged into `ctx`, e.g. `{ db: scopedPool(...) }`. */
  providers?: P;
  /** MCP server name and version. */
  serverInfo?: { name: string; version: string };
  /** Tenant-identifying argument fields and what to do with them. */
  tenantOverride?: {
    /** Field names (compared case-insensitively, ignoring `_` and `-`). Default `tenant_id`, `tenantId`. */
    fields?: readonly string[];
    /** `refuse` (default) rejects the call; `strip` removes the fields. Both are audited. */
    mode?: 'refuse' | 'strip';
  };
  /** Limits and bounds. */
  limits?: TenantScopeLimits;
  /** A shared limiter for several replicas. Default: in memory. */
  limiter?: CallLimiter;
  /** What to do when the audit sink cannot write. `deny` (default) fails the call. */
  onAuditFailure?: 'deny' | 'allow';
  /** Where `ctx.logger` and server diagnostics write. Default: JSON lines on stderr. */
  log?: LogWriter;
  /** Client address for audit events. Default: the socket's remote address (proxies are not trusted). */
  clientAddress?: (req: IncomingMessage) => string | null;
  /** Human-readable name in the protected resource metadata. */
  resourceName?: string;
  /**
   * Bounds the unauthenticated audit stream (refusals no tenant can be attributed to, which anyone
   * can cause): at most `maxPerWindow` events (default 100) per `windowMs` (default 60 s), then one
   * `auth_failure_summary` event per window with the count left out.
   */
  unauthenticatedAudit?: UnauthenticatedAuditOptions;
  /**
   * `session` (default): `initialize` opens a session bound to the token's tenant and subject,
   * held in this process (behind several replicas, the balancer must stick on `mcp-session-id`).
   * `stateless`: no session; every POST is verified, scoped and answered on its own, so any
   * replica serves any request. GET and DELETE are answered 405.
   */
  mode?: 'session' | 'stateless';
}

interface Session {
  id: string;
  tenantId: string;
  subject: string;
  server: McpServer;
  transport: StreamableHTTPServerTransport;
  registered: Set<string>;
  lastSeen: number;
}

type AnyTool = ToolDefinition<z.ZodRawShape, never>;

type CallExtra = { authInfo?: { extra?: Record<string, unknown> } };

/** Principals attached by a stateless request that is being answered now. */
const liveBindings = new WeakSet<object>();

/** The session a stateless request attached to its verified principal (never from the client). */
function statelessBinding(extra: CallExtra): Session {
  const bound = extra.authInfo?.extra;
  if (!bound || !liveBindings.has(bound) || !bound.session) {
    throw new TenantScopeError('NO_TENANT_CONTEXT', 'no verified principal for this call');
  }
  return bound.session as Session;
}

const DEFAULT_OVERRIDE_FIELDS = ['tenant_id', 'tenantId'];

/** A multi-tenant MCP server: register tools, then mount `handle` (Node) or the Express adapter. */
export class TenantScope<P extends Providers = Record<never, never>> {
  readonly #opts: TenantScopeOptions<P>;
  readonly #tools = new Map<string, AnyTool>();
  readonly #sessions = new Map<string, Session>();
  readonly #byTenant = new Map<string, Map<string, Session>>();
  readonly #limiter: CallLimiter;
  readonly #log: LogWriter;
  readonly #overrideFields: Set<string>;
  readonly #mcpPath: string;
  readonly #metadataPath: string;
  readonly #metadataUrl: string;
  readonly #limits: Required<TenantScopeLimits>;
  readonly #anonymous: UnauthenticatedAuditBound;
  readonly #stateless: boolean;
  readonly #pool: ServerPool;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  #draining = false;
  #inFlight = 0;
  #idle: (() => void)[] = [];

  constructor(options: TenantScopeOptions<P>) {
    if (!options?.verifier || !options.directory || !options.audit) {
      throw new TenantScopeError('INVALID_CONFIG', 'verifier, directory and audit are required');
    }
    this.#opts = options;
    if (options.mode !== undefined && options.mode !== 'session' && options.mode !== 'stateless') {
      throw new TenantScopeError('INVALID_CONFIG', "mode must be 'session' or 'stateless'");
    }
    this.#stateless = options.mode === 'stateless';
    this.#limiter = options.limiter ?? new MemoryCallLimiter();
    this.#log = options.log ?? stderrLogWriter;
    this.#anonymous = new UnauthenticatedAuditBound((e) => options.audit.write(e), options.unauthenticatedAudit);
    this.#overrideFields = new Set((options.tenantOverride?.fields ?? DEFAULT_OVERRIDE_FIELDS).map(normaliseField));
    const l = options.limits ?? {};
    this.#limits = {
      callsPerMinute: l.callsPerMinute ?? 600,
      maxConcurrentCalls: l.maxConcurrentCalls ?? 32,
      maxSessionsPerTenant: l.maxSessionsPerTenant ?? 16,
      maxSessions: l.maxSessions ?? 10_000,
      sessionIdleTimeoutMs: l.sessionIdleTimeoutMs ?? 15 * 60_000,
      maxBodyBytes: l.maxBodyBytes ?? 1024 * 1024,
      maxIdleServers: l.maxIdleServers ?? 64,
      maxResultBytes: checkResultCap(l.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES, 'limits'),
    };
    this.#pool = new ServerPool({ maxIdlePerKey: this.#limits.maxIdleServers });
    const audience = new URL(options.verifier.audience);
    this.#mcpPath = audience.pathname === '' ? '/' : audience.pathname;
    this.#metadataPath = `/.well-known/oauth-protected-resource${this.#mcpPath === '/' ? '' : this.#mcpPath}`;
    this.#metadataUrl = `${audience.origin}${this.#metadataPath}`;
  }

  /** Path the MCP endpoint is served on (the path of the audience URI). */
  get mcpPath(): string {
    return this.#mcpPath;
  }
  /** Path of the RFC 9728 protected resource metadata. */
  get metadataPath(): string {
    return this.#metadataPath;
  }
  /** Names of every registered tool. */
  get toolNames(): string[] {
    return [...this.#tools.keys()];
  }
  /** Open sessions (all tenants). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Registers a tool. The handler's `ctx` carries the tenant and this server's providers. */
  tool<S extends z.ZodRawShape>(def: ToolDefinition<S, ResourcesOf<P>>): this {
    validateToolDefinition(def as unknown as ToolDefinition<z.ZodRawShape, unknown>);
    if (this.#tools.has(def.name)) throw new TenantScopeError('INVALID_CONFIG', `tool ${def.name} is registered twice`);
    this.#tools.set(def.name, def as unknown as AnyTool);
    return this;
  }

  /** RFC 9728 metadata for this resource. */
  protectedResourceMetadata(): Record<string, unknown> {
    return {
      resource: this.#opts.verifier.audience,
      authorization_servers: [...this.#opts.verifier.issuers],
      bearer_methods_supported: ['header'],
      resource_name: this.#opts.resourceName ?? 'tenantscope MCP server',
    };
  }

  /**
   * The framework-neutral Node handler. Serves the MCP endpoint and the protected resource
   * metadata; answers 404 for any other path. `body` is an already-parsed JSON body, if any.
   */
  async handle(req: IncomingMessage, res: ServerResponse, body?: unknown): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (path === this.#metadataPath && (req.method === 'GET' || req.method === 'HEAD')) {
        return sendJson(res, 200, this.protectedResourceMetadata());
      }
      if (path !== this.#mcpPath) return sendJson(res, 404, { error: 'not_found' });
      if (this.#draining) return sendUnavailable(res, 'server is shutting down');
      if (req.method !== 'GET') this.#track(res);
      await this.#handleMcp(req, res, body);
    } catch (err) {
      this.#diag('error', 'request failed', err);
      if (!res.headersSent) {
        const e = isTenantScopeError(err) ? err : new TenantScopeError('INTERNAL', 'internal error');
        sendJson(res, e.status, jsonRpcError(null, e));
      } else res.end();
    }
  }

  /** MCP requests (POST, DELETE) being answered now; a GET event stream is not counted. */
  get inFlight(): number {
    return this.#inFlight;
  }
  /** True once `drain()` was called. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Starts a shutdown: every MCP request from now on is answered 503 with `Retry-After` (so a
   * balancer or client retries on another replica), and the promise resolves once the requests
   * already being answered have finished (true), or after `timeoutMs` (false). Then call `close()`.
   */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    this.#draining = true;
    if (this.#inFlight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(this.#inFlight === 0), timeoutMs);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #track(res: ServerResponse): void {
    this.#inFlight++;
    res.once('close', () => {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const wake of this.#idle.splice(0)) wake();
    });
  }

  /** Closes every session and stops the idle sweeper. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    await this.#anonymous.flush().catch((err) => this.#diag('error', 'audit write failed', err));
    await Promise.allSettled([...this.#sessions.values()].map((s) => this.#closeSession(s)));
    this.#pool.clear();
  }

  // --- HTTP ---------------------------------------------------------------------------------

  async #handleMcp(req: IncomingMessage, res: ServerResponse, preParsed: unknown): Promise<void> {
    const started = performance.now();
    const ip = this.#opts.clientAddress ? this.#opts.clientAddress(req) : (req.socket.remoteAddress ?? null);
    const method = req.method ?? 'GET';

    // 1. Authenticate: every request, before anything else is looked at.
    const sessionHeader = header(req, 'mcp-session-id');
    let tenant: Tenant;
    try {
      tenant = await this.#opts.verifier.verify(bearer(req));
    } catch (err) {
      const e = isTenantScopeError(err) ? err : new TenantScopeError('AUTH_MALFORMED', 'token could not be verified');
      // Attributed only when the signature verified (see the verifier's hints); null otherwise.
      const hint = typeof e.details?.tenantHint === 'string' ? e.details.tenantHint : null;
      const subjectHint = hint && typeof e.details?.subjectHint === 'string' ? e.details.subjectHint : null;
      // Unattributed failures share one stream anyone can write to: rate-bounded, then summarised.
      const write = hint === null ? (ev: AuditEvent) => this.#anonymous.record(ev) : undefined;
      await this.#auditOrThrow(
        {
          tenant_id: hint,
          session_id: null, // an unauthenticated request's session header proves nothing
          subject: subjectHint,
          event_type: 'auth_failure',
          tool_name: null,
          args_hash: null,
          result_status: 'denied',
          reason: e.code,
          latency_ms: performance.now() - started,
          ip_address: ip,
        },
        write,
      ).catch(() => undefined); // an auth failure is refused whether or not its audit lands
      return this.#sendAuthError(res, e);
    }

    // Every refusal from here on is of an authenticated request: audited in the caller's stream.
    const refuse = async (status: number, e: TenantScopeError, id: unknown, payload?: unknown): Promise<void> => {
      await this.#auditRefusal(tenant, ip, started, e.code, payload);
      sendJson(res, status, jsonRpcError(id, e));
    };
    if (!['GET', 'POST', 'DELETE'].includes(method)) {
      res.setHeader('Allow', 'GET, POST, DELETE');
      return refuse(405, new TenantScopeError('METHOD_NOT_ALLOWED', 'method not allowed'), null);
    }

    // 2. Body (POST only).
    let body: unknown;
    if (method === 'POST') {
      if (preParsed !== undefined) body = preParsed;
      else {
        try {
          body = await readJson(req, this.#limits.maxBodyBytes);
        } catch (err) {
          const e = isTenantScopeError(err) ? err : new TenantScopeError('BAD_REQUEST', 'invalid body');
          await this.#auditRefusal(tenant, ip, started, e.code);
          return sendJson(res, e.status, { jsonrpc: '2.0', id: null, error: { code: -32700, message: e.message } });
        }
      }
    }

    // 3. Session: bind on initialize, match on every later request.
    if (this.#stateless) return this.#handleStateless(req, res, body, tenant, ip, started);
    let session: Session;
    if (sessionHeader === undefined) {
      if (method !== 'POST' || !isInitialize(body)) {
        const e = new TenantScopeError('SESSION_REQUIRED', 'no session: send initialize first');
        return refuse(400, e, idOf(body), body);
      }
      try {
        session = await this.#openSession(tenant);
      } catch (err) {
        return this.#refuseSession(res, body, err, tenant, ip, started);
      }
    } else {
      const found = this.#sessions.get(sessionHeader);
      if (!found) {
        return refuse(404, new TenantScopeError('SESSION_NOT_FOUND', 'session not found'), idOf(body), body);
      }
      if (found.tenantId !== tenant.id || found.subject !== tenant.subject) {
        // Another principal presenting this session id: refuse, audit in the caller's stream,
        // and leave the session itself untouched.
        const e = new TenantScopeError('SESSION_MISMATCH', 'session belongs to another principal');
        await this.#auditSessionDenied(tenant, ip, e.code, started);
        return sendJson(res, 403, jsonRpcError(idOf(body), e));
      }
      session = found;
      session.lastSeen = Date.now();
      // Move to the end of the tenant's LRU order.
      const per = this.#byTenant.get(session.tenantId);
      per?.delete(session.id);
      per?.set(session.id, session);
    }

    // 4. Guard tools/call arguments before the SDK sees them.
    if (method === 'POST') {
      const refusal = await this.#guardCalls(body, session, tenant, ip, started);
      if (refusal) return sendJson(res, 200, refusal);
    }

    // 5. Hand over to the SDK transport with the verified principal attached.
    (req as IncomingMessage & { auth?: unknown }).auth = {
      token: '',
      clientId: tenant.subject,
      scopes: [],
      expiresAt: Math.floor(tenant.expiresAt.getTime() / 1000),
      extra: { tenant, ip },
    };
    await session.transport.handleRequest(req, res, body);
    if (method === 'DELETE') await this.#closeSession(session);
  }

  /** Refuses a request that could not be given a session (or, stateless, a tool set); audited. */
  async #refuseSession(
    res: ServerResponse,
    body: unknown,
    err: unknown,
    tenant: Tenant,
    ip: string | null,
    started: number,
  ): Promise<void> {
    const e = isTenantScopeError(err) ? err : new TenantScopeError('INTERNAL', 'session could not be opened');
    await this.#auditSessionDenied(tenant, ip, e.code, started);
    if (e.code === 'INSUFFICIENT_SCOPE') return this.#sendAuthError(res, e);
    return sendJson(res, e.status, jsonRpcError(idOf(body), e));
  }

  /**
   * Audits the refusal of an authenticated request in the caller's stream: event `request_denied`,
   * or `tool_call` (denied) when the body was a tools/call, so every refused call is in the trail.
   */
  #auditRefusal(tenant: Tenant, ip: string | null, started: number, reason: string, body?: unknown): Promise<void> {
    const call = isRecord(body) && body.method === 'tools/call' && isRecord(body.params) ? body.params : undefined;
    return this.#auditOrThrow({
      tenant_id: tenant.id,
      subject: tenant.subject,
      ip_address: ip,
      session_id: null, // a refused request's session header is not trusted
      event_type: call ? 'tool_call' : 'request_denied',
      tool_name: call && typeof call.name === 'string' ? call.name.slice(0, 128) : null,
      args_hash: call ? safeHash(call.arguments) : null,
      result_status: 'denied',
      reason,
      latency_ms: performance.now() - started,
      request_id:
        isRecord(body) && (typeof body.id === 'string' || typeof body.id === 'number') ? String(body.id) : null,
    });
  }

  #auditSessionDenied(tenant: Tenant, ip: string | null, reason: string, started: number): Promise<void> {
    return this.#auditOrThrow({
      tenant_id: tenant.id,
      subject: tenant.subject,
      ip_address: ip,
      session_id: null,
      event_type: 'session_denied',
      tool_name: null,
      args_hash: null,
      result_status: 'denied',
      reason,
      latency_ms: performance.now() - started,
    });
  }

  /**
   * Stateless mode: this request alone, on a fresh SDK transport (JSON responses) and a server
   * with the tenant's tools (pooled by tool set). The token was verified above; the tool set is
   * computed from the current policy and this token, exactly as when a session opens.
   */
  async #handleStateless(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    tenant: Tenant,
    ip: string | null,
    started: number,
  ): Promise<void> {
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      const e = new TenantScopeError('METHOD_NOT_ALLOWED', 'this server is stateless: POST only, no sessions');
      await this.#auditRefusal(tenant, ip, started, e.code);
      return sendJson(res, 405, jsonRpcError(null, e));
    }
    let tools: Set<string>;
    try {
      tools = await this.#grantedTools(tenant);
    } catch (err) {
      return this.#refuseSession(res, body, err, tenant, ip, started);
    }
    const key = toolSetKey(tools);
    // initialize stores the client's capabilities on the server: such a server is not reused.
    const reusable = !isInitialize(body);
    const server = this.#pool.take(key, () => this.#buildServer(tools, statelessBinding));
    const session: Session = {
      id: randomUUID(), // per request: the audit's session_id of a stateless call
      tenantId: tenant.id,
      subject: tenant.subject,
      server,
      transport: new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true }),
      registered: tools,
      lastSeen: Date.now(),
    };
    const refusal = await this.#guardCalls(body, session, tenant, ip, started);
    if (refusal) {
      if (reusable) this.#pool.give(key, server);
      return sendJson(res, 200, refusal);
    }
    const auth = { token: '', clientId: tenant.subject, scopes: [], expiresAt: 0, extra: { tenant, ip, session } };
    auth.expiresAt = Math.floor(tenant.expiresAt.getTime() / 1000);
    (req as IncomingMessage & { auth?: unknown }).auth = auth;
    liveBindings.add(auth.extra);
    watchDelivery(session.transport, (requestId, err) => this.#undelivered(session, requestId, err));
    await server.connect(session.transport);
    res.once('close', () => {
      liveBindings.delete(auth.extra);
      void server.close().then(
        () => reusable && !this.#closed && this.#pool.give(key, server),
        () => undefined,
      );
    });
    await session.transport.handleRequest(req, res, body);
  }

  /**
   * Refusals of a tools/call decided before the SDK sees it, each audited in the caller's stream:
   * a tenant override (refused or stripped), arguments that fail the tool's input schema, and a
   * tool outside the caller's set (recorded here; the SDK answers it exactly as an unknown tool).
   * A refusal is an `isError` result with `_meta.code`, as for every refusal of a call.
   */
  async #guardCalls(body: unknown, session: Session, tenant: Tenant, ip: string | null, started: number) {
    const messages = Array.isArray(body) ? body : [body];
    const refused: unknown[] = [];
    const settled = new Set<unknown>(); // messages already answered or audited here
    for (const m of messages) {
      if (!isRecord(m) || m.method !== 'tools/call' || !isRecord(m.params)) continue;
      const name = typeof m.params.name === 'string' ? m.params.name : '';
      const args = m.params.arguments;
      const paths = findOverrideFields(args, this.#overrideFields);
      const unknown = !session.registered.has(name);
      const def = unknown ? undefined : this.#tools.get(name);
      let invalid = def && paths.length === 0 ? checkArguments(def, args) : undefined;
      if (paths.length === 0 && !unknown && !invalid) continue; // the common case: nothing to refuse or record
      const base = {
        tenant_id: tenant.id,
        session_id: session.id,
        subject: tenant.subject,
        tool_name: name.slice(0, 128),
        args_hash: safeHash(args),
        ip_address: ip,
        request_id: m.id === undefined ? null : String(m.id),
      };
      settled.add(m);
      const refuse = (e: TenantScopeError) => refused.push(toolRefusal(m.id, e));
      if (paths.length > 0) {
        const strip = this.#opts.tenantOverride?.mode === 'strip';
        await this.#auditOrThrow({
          ...base,
          event_type: 'tenant_override',
          result_status: strip ? 'ok' : 'denied',
          reason: strip ? 'TENANT_OVERRIDE_STRIPPED' : 'TENANT_OVERRIDE',
          latency_ms: performance.now() - started,
        });
        if (!strip) {
          refuse(
            new TenantScopeError('TENANT_OVERRIDE', 'tenant-identifying fields are not accepted in tool arguments'),
          );
          continue;
        }
        m.params.arguments = stripOverrideFields(args, this.#overrideFields);
        invalid = def ? checkArguments(def, m.params.arguments) : undefined;
      }
      if (invalid) {
        await this.#auditOrThrow({
          ...base,
          event_type: 'tool_call',
          result_status: 'denied',
          reason: invalid.code,
          latency_ms: performance.now() - started,
        });
        refuse(invalid);
        continue;
      }
      if (unknown) {
        // The SDK answers this exactly as for any unknown tool; we only record the denial.
        await this.#auditOrThrow({
          ...base,
          event_type: 'tool_call',
          result_status: 'denied',
          reason: 'TOOL_NOT_FOUND',
          latency_ms: performance.now() - started,
        });
      }
    }
    if (refused.length === 0) return undefined;
    if (!Array.isArray(body)) return refused[0];
    // A batch is answered here as a whole, so every other request in it gets an answer (and a
    // call, an audit event) instead of being dropped: refused, to be sent again on its own.
    const e = new TenantScopeError('BATCH_REFUSED', 'another call in this batch was refused; send this one alone');
    const answered = refusedIds(refused);
    for (const m of messages) {
      if (!isRecord(m) || m.id === undefined || typeof m.method !== 'string' || answered.has(m.id)) continue;
      if (m.method !== 'tools/call') {
        refused.push(jsonRpcError(m.id, e));
        continue;
      }
      if (!settled.has(m)) await this.#auditRefusal(tenant, ip, started, e.code, m);
      refused.push(toolRefusal(m.id, e));
    }
    return refused;
  }

  #sendAuthError(res: ServerResponse, e: TenantScopeError): void {
    const scope = e.code === 'INSUFFICIENT_SCOPE' || e.status === 403;
    const params = [
      e.code === 'AUTH_MISSING' ? null : `error="${scope ? 'insufficient_scope' : 'invalid_token'}"`,
      e.code === 'AUTH_MISSING' ? null : `error_description="${e.code}"`,
      `resource_metadata="${this.#metadataUrl}"`,
    ].filter(Boolean);
    res.setHeader('WWW-Authenticate', `Bearer ${params.join(', ')}`);
    sendJson(res, e.status === 403 ? 403 : 401, jsonRpcError(null, e));
  }

  // --- sessions -----------------------------------------------------------------------------

  async #policy(tenant: Tenant): Promise<TenantPolicy> {
    const policy = await this.#opts.directory.get(tenant.id);
    if (!policy) throw new TenantScopeError('TENANT_UNKNOWN', 'tenant is not in the directory');
    return policy;
  }

  async #openSession(tenant: Tenant): Promise<Session> {
    if (this.#closed) throw new TenantScopeError('SESSION_LIMIT', 'server is closing');
    const policy = await this.#policy(tenant);
    const tools = this.#toolsFor(policy, tenant);
    const perTenantMax = policy.limits?.maxSessions ?? this.#limits.maxSessionsPerTenant;
    const mine = this.#byTenant.get(tenant.id) ?? new Map<string, Session>();
    // Past the tenant's cap, close its least recently used session: one tenant never evicts another's.
    while (mine.size >= perTenantMax) {
      const oldest = mine.values().next().value as Session | undefined;
      if (!oldest) break;
      await this.#closeSession(oldest);
    }
    if (this.#sessions.size >= this.#limits.maxSessions) {
      throw new TenantScopeError('SESSION_LIMIT', 'server session capacity reached');
    }
    this.#startSweeper();

    const id = randomBytes(32).toString('base64url'); // 256 random bits
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const session: Session = {
      id,
      tenantId: tenant.id,
      subject: tenant.subject,
      server: this.#buildServer(tools, () => session),
      transport,
      registered: tools,
      lastSeen: Date.now(),
    };
    const server = session.server;
    watchDelivery(transport, (requestId, err) => this.#undelivered(session, requestId, err));
    transport.onclose = () => this.#forget(session);
    await server.connect(transport);
    this.#sessions.set(id, session);
    mine.set(id, session);
    this.#byTenant.set(tenant.id, mine);
    return session;
  }

  /** The tools this token may call under this policy; none is refused as INSUFFICIENT_SCOPE. */
  #toolsFor(policy: TenantPolicy, tenant: Tenant): Set<string> {
    const tools = effectiveTools(this.#tools.keys(), policy, tenant);
    if (tools.size === 0) throw new TenantScopeError('INSUFFICIENT_SCOPE', 'no tool is granted to this token');
    return tools;
  }

  async #grantedTools(tenant: Tenant): Promise<Set<string>> {
    return this.#toolsFor(await this.#policy(tenant), tenant);
  }

  /** An McpServer with exactly these tools; each call runs the pipeline for `sessionOf(extra)`. */
  #buildServer(tools: ReadonlySet<string>, sessionOf: (extra: CallExtra) => Session): McpServer {
    const server = new McpServer(this.#opts.serverInfo ?? { name: 'tenantscope', version: '0.1.0' });
    for (const name of tools) {
      const def = this.#tools.get(name) as AnyTool;
      server.registerTool(
        name,
        {
          title: def.title,
          description: def.description,
          inputSchema: def.input ?? {},
          annotations: def.annotations,
        },
        (args: Record<string, unknown>, extra) => this.#runTool(sessionOf(extra), def, args, extra),
      );
    }
    return server;
  }

  #forget(session: Session): void {
    this.#sessions.delete(session.id);
    const mine = this.#byTenant.get(session.tenantId);
    if (mine) {
      mine.delete(session.id);
      if (mine.size === 0) this.#byTenant.delete(session.tenantId);
    }
  }

  async #closeSession(session: Session): Promise<void> {
    this.#forget(session);
    await session.server.close().catch(() => undefined);
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.#limits.sessionIdleTimeoutMs / 2)));
    this.#sweeper = setInterval(() => {
      const cutoff = Date.now() - this.#limits.sessionIdleTimeoutMs;
      for (const s of this.#sessions.values()) if (s.lastSeen < cutoff) void this.#closeSession(s);
    }, every);
    this.#sweeper.unref();
  }

  // --- the call pipeline --------------------------------------------------------------------

  /**
   * One tool call. Every refusal or failure of a call is an `isError` result carrying `_meta.code`;
   * the one exception is a tool outside the caller's set, answered exactly as the SDK answers an
   * unknown tool (so a tenant cannot tell a hidden tool from a missing one).
   */
  async #runTool(
    session: Session,
    def: AnyTool,
    args: Record<string, unknown>,
    extra: { authInfo?: { extra?: Record<string, unknown> }; signal: AbortSignal; requestId: string | number },
  ): Promise<CallToolResult> {
    try {
      return await this.#pipeline(session, def, args, extra);
    } catch (err) {
      if (isTenantScopeError(err)) return errorResult(err);
      throw err; // the SDK's unknown-tool answer, byte for byte
    }
  }

  async #pipeline(
    session: Session,
    def: AnyTool,
    args: Record<string, unknown>,
    extra: { authInfo?: { extra?: Record<string, unknown> }; signal: AbortSignal; requestId: string | number },
  ): Promise<CallToolResult> {
    const started = performance.now();
    const tenant = extra.authInfo?.extra?.tenant;
    assertTenant(tenant, 'a tool call');
    const ip = (extra.authInfo?.extra?.ip as string | null | undefined) ?? null;
    if (tenant.id !== session.tenantId || tenant.subject !== session.subject) {
      throw new TenantScopeError('SESSION_MISMATCH', 'session belongs to another principal');
    }
    const requestId = String(extra.requestId);
    const hash = argsHash(args); // once per call, however many events it writes
    const event = (status: AuditStatus, reason: string | null): AuditEvent => ({
      timestamp: new Date().toISOString(),
      tenant_id: tenant.id,
      session_id: session.id,
      subject: tenant.subject,
      event_type: 'tool_call',
      tool_name: def.name,
      args_hash: hash,
      result_status: status,
      reason,
      latency_ms: round(performance.now() - started),
      ip_address: ip,
      request_id: requestId,
    });

    // ACL again at call time, against this request's token and the current policy. A tool
    // outside the set is answered exactly as the SDK answers an unknown tool.
    const policy = await this.#opts.directory.get(tenant.id);
    if (!policy || !effectiveTools([def.name], policy, tenant).has(def.name)) {
      await this.#write(event('denied', 'TOOL_NOT_FOUND'));
      throw new McpError(ErrorCode.InvalidParams, `Tool ${def.name} not found`);
    }

    let release: (() => void) | undefined;
    try {
      release = await this.#limiter.acquire(tenant.id, {
        callsPerMinute: policy.limits?.callsPerMinute ?? this.#limits.callsPerMinute,
        maxConcurrentCalls: policy.limits?.maxConcurrentCalls ?? this.#limits.maxConcurrentCalls,
      });
    } catch (err) {
      const e = isTenantScopeError(err) ? err : new TenantScopeError('RATE_LIMITED', 'rate limited');
      await this.#write(event('denied', e.code));
      return errorResult(e);
    }

    const cap = def.maxResultBytes ?? this.#limits.maxResultBytes;
    const redactions = new Set<string>();
    const logger = this.#callLogger(tenant, session.id, def.name, requestId, redactions);
    const call: CallInfo = {
      tenant,
      subject: tenant.subject,
      sessionId: session.id,
      requestId,
      toolName: def.name,
      declaredSecrets: Object.freeze([...(def.secrets ?? [])]),
      signal: extra.signal,
      logger,
      resultBudget: new ResultBudget(cap),
      addRedaction: (value: string) => {
        if (typeof value === 'string' && value.length >= 4) redactions.add(value);
      },
    };
    const created: { key: string; value: unknown }[] = [];
    const ctx = this.#buildContext(call, created);

    let result: CallToolResult;
    let status: AuditStatus = 'ok';
    let reason: string | null = null;
    try {
      const value: ToolResult = await runInTenantContext(tenant, call, () => def.handler(args as never, ctx as never));
      // Measured without serialising: a 300 MB result costs a walk to the cap, not a copy.
      if (jsonByteLength(value, cap) > cap) throw resultTooLarge(cap);
      result = toCallToolResult(value);
      if (result !== value && jsonByteLength(result, cap) > cap) throw resultTooLarge(cap);
    } catch (err) {
      status = 'error';
      if (isTenantScopeError(err)) {
        reason = err.code;
        result = errorResult(err);
        if (err.cause !== undefined)
          this.#log(causeRecord(err, { tenant_id: tenant.id, tool_name: def.name, request_id: requestId }, redactions));
      } else {
        reason = 'INTERNAL';
        this.#diag('error', 'tool handler failed', err, { tenant_id: tenant.id, tool_name: def.name });
        result = errorResult(new TenantScopeError('INTERNAL', 'the tool failed'));
      }
    } finally {
      release();
      await this.#releaseResources(call, created);
    }

    const masked = redactDeep(result, redactions);
    if (masked.count > 0) {
      result = masked.value;
      await this.#write({ ...event('ok', 'SECRET_REDACTED'), event_type: 'secret_redacted' });
    }
    await this.#write(event(status, reason));
    return result;
  }

  /** A response the client never got: the audit says so, after the outcome it already recorded. */
  #undelivered(session: Session, requestId: string | number, err: unknown): void {
    this.#diag('warn', 'response not delivered', err, { tenant_id: session.tenantId, request_id: String(requestId) });
    void this.#write({
      timestamp: new Date().toISOString(),
      tenant_id: session.tenantId,
      session_id: session.id,
      subject: session.subject,
      event_type: 'response_undelivered',
      tool_name: null,
      args_hash: null,
      result_status: 'error',
      reason: 'RESPONSE_UNDELIVERED',
      latency_ms: 0,
      ip_address: null,
      request_id: String(requestId),
    }).catch(() => undefined); // already logged by #write
  }

  #buildContext(call: CallInfo, created: { key: string; value: unknown }[]): Record<string, unknown> {
    const ctx: Record<string, unknown> = {
      tenant: call.tenant,
      subject: call.subject,
      sessionId: call.sessionId,
      requestId: call.requestId,
      toolName: call.toolName,
      signal: call.signal,
      logger: call.logger,
      resultBudget: call.resultBudget,
    };
    for (const [key, provider] of Object.entries(this.#opts.providers ?? {})) {
      let cached: { value: unknown } | undefined;
      Object.defineProperty(ctx, key, {
        enumerable: true,
        get: () => {
          if (!cached) {
            cached = { value: provider.forCall(call) };
            created.push({ key, value: cached.value });
          }
          return cached.value;
        },
      });
    }
    return Object.freeze(ctx);
  }

  async #releaseResources(call: CallInfo, created: { key: string; value: unknown }[]): Promise<void> {
    for (const { key, value } of created) {
      const provider = this.#opts.providers?.[key];
      try {
        await provider?.release?.(value, call);
      } catch (err) {
        this.#diag('error', 'resource release failed', err, { provider: key });
      }
    }
  }

  #callLogger(tenant: Tenant, sessionId: string, tool: string, requestId: string, redactions: Set<string>): Logger {
    const write = (level: string, message: string, fields?: Record<string, unknown>) => {
      const record = redactDeep(
        {
          level,
          time: new Date().toISOString(),
          msg: message,
          tenant_id: tenant.id,
          session_id: sessionId,
          tool_name: tool,
          request_id: requestId,
          ...fields,
        },
        redactions,
      ).value;
      this.#log(record);
    };
    return {
      debug: (m, f) => write('debug', m, f),
      info: (m, f) => write('info', m, f),
      warn: (m, f) => write('warn', m, f),
      error: (m, f) => write('error', m, f),
    };
  }

  async #write(event: AuditEvent): Promise<void> {
    try {
      await this.#opts.audit.write(event);
    } catch (err) {
      this.#diag('error', 'audit write failed', err, { tenant_id: event.tenant_id });
      if (this.#opts.onAuditFailure === 'allow') return;
      // Fail closed: the caller gets no result when its audit event did not land.
      throw new TenantScopeError('AUDIT_WRITE_FAILED', 'the call could not be audited', { cause: err });
    }
  }

  async #auditOrThrow(
    partial: Omit<AuditEvent, 'timestamp'>,
    write: (event: AuditEvent) => Promise<void> = (e) => this.#opts.audit.write(e),
  ): Promise<void> {
    const event: AuditEvent = {
      timestamp: new Date().toISOString(),
      ...partial,
      latency_ms: round(partial.latency_ms),
    };
    try {
      await write(event);
    } catch (err) {
      this.#diag('error', 'audit write failed', err, { tenant_id: event.tenant_id });
      if (this.#opts.onAuditFailure !== 'allow') {
        throw new TenantScopeError('AUDIT_WRITE_FAILED', 'the request could not be audited', { cause: err });
      }
    }
  }

  #diag(level: string, msg: string, err: unknown, fields: Record<string, unknown> = {}): void {
    const e = err as { code?: unknown; message?: unknown } | undefined;
    this.#log({
      level,
      time: new Date().toISOString(),
      msg,
      error_code: e?.code,
      error: String(e?.message ?? err),
      ...fields,
    });
  }
}

/** Creates a TenantScope server. */
export function tenantScope<P extends Providers = Record<never, never>>(
  options: TenantScopeOptions<P>,
): TenantScope<P> {
  return new TenantScope(options);
}

// --- helpers ---------------------------------------------------------------------------------

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function errorResult(e: TenantScopeError): CallToolResult {
  return { content: [{ type: 'text', text: `${e.code}: ${e.message}` }], isError: true, _meta: { code: e.code } };
}

function refusedIds(answers: unknown[]): Set<unknown> {
  return new Set(answers.map((a) => (a as { id?: unknown }).id));
}

/** A refused tools/call, answered as a tool result: `isError` with `_meta.code`. */
function toolRefusal(id: unknown, e: TenantScopeError) {
  return {
    jsonrpc: '2.0' as const,
    id: typeof id === 'string' || typeof id === 'number' ? id : null,
    result: errorResult(e),
  };
}

function jsonRpcError(id: unknown, e: TenantScopeError) {
  return {
    jsonrpc: '2.0' as const,
    id: typeof id === 'string' || typeof id === 'number' ? id : null,
    error: { code: jsonRpcCodeFor(e), message: `${e.code}: ${e.message}`, data: { code: e.code } },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('Cache-Control', 'no-store');
  res.end(text);
}

function sendUnavailable(res: ServerResponse, message: string): void {
  res.setHeader('Retry-After', '1');
  res.setHeader('Connection', 'close');
  sendJson(res, 503, jsonRpcError(null, new TenantScopeError('UNAVAILABLE', message)));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function bearer(req: IncomingMessage): string {
  const auth = header(req, 'authorization');
  if (!auth) return '';
  const m = /^Bearer +(\S+) *$/i.exec(auth);
  if (!m?.[1]) throw new TenantScopeError('AUTH_MALFORMED', 'Authorization must be "Bearer <token>"');
  return m[1];
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInitialize(body: unknown): boolean {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => isRecord(m) && m.method === 'initialize');
}

function idOf(body: unknown): unknown {
  return isRecord(body) ? body.id : null;
}

function safeHash(args: unknown): string | null {
  try {
    return argsHash(args ?? {});
  } catch {
    return null;
  }
}

function normaliseField(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}

/** Paths of every tenant-identifying key at any depth. */
export function findOverrideFields(value: unknown, fields: ReadonlySet<string>, path = '$', depth = 0): string[] {
  if (depth > 64 || value === null || typeof value !== 'object') return [];
  const found: string[] = [];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) found.push(...findOverrideFields(v, fields, `${path}[${i}]`, depth + 1));
    return found;
  }
  for (const [k, v] of Object.entries(value)) {
    if (fields.has(normaliseField(k))) found.push(`${path}.${k}`);
    found.push(...findOverrideFields(v, fields, `${path}.${k}`, depth + 1));
  }
  return found;
}

function stripOverrideFields(value: unknown, fields: ReadonlySet<string>, depth = 0): unknown {
  if (depth > 64 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => stripOverrideFields(v, fields, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(normaliseField(k))) out[k] = stripOverrideFields(v, fields, depth + 1);
  }
  return out;
}

export { REDACTED };
