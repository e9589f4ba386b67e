import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { z } from 'zod';
import type { AuditSink } from './audit.ts';
import { AuditWriter, type Caller, refusalRecord, sessionDeniedRecord } from './audit-writer.ts';
import { type LogWriter, type Providers, type ResourcesOf, stderrLogWriter } from './context.ts';
import { watchDelivery } from './delivery.ts';
import { type Diag, diagWriter } from './diagnostics.ts';
import { effectiveTools, type TenantDirectory, type TenantPolicy } from './directory.ts';
import { isTenantScopeError, TenantScopeError } from './errors.ts';
import {
  attachPrincipal,
  bearer,
  header,
  idOf,
  isInitialize,
  protectedResourceMetadata,
  type ResourcePaths,
  readJson,
  resourcePaths,
  sendAuthError,
  sendBodyError,
  sendError,
  sendJson,
  sendUnavailable,
} from './http.ts';
import { type CallLimiter, MemoryCallLimiter } from './limits.ts';
import { OverrideGuard } from './override-guard.ts';
import { type AnyTool, callPipeline } from './pipeline.ts';
import { UnauthenticatedAuditBound, type UnauthenticatedAuditOptions } from './refusal-audit.ts';
import { checkResultCap, DEFAULT_MAX_RESULT_BYTES } from './result-limit.ts';
import {
  bindStateless,
  type CallExtra,
  type Session,
  SessionStore,
  statelessBinding,
  statelessSession,
  unbindStateless,
} from './sessions.ts';
import { ServerPool, toolSetKey } from './stateless.ts';
import type { Tenant } from './tenant.ts';
import { type ToolDefinition, validateToolDefinition } from './tool.ts';
import type { TokenVerifier } from './verifier.ts';

/** Re-exported for the package entry (its export list is pinned). */
export { findOverrideFields } from './override-guard.ts';

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

/** A multi-tenant MCP server: register tools, then mount `handle` (Node) or the Express adapter. */
export class TenantScope<P extends Providers = Record<never, never>> {
  readonly #opts: TenantScopeOptions<P>;
  readonly #tools = new Map<string, AnyTool>();
  readonly #sessions: SessionStore;
  readonly #paths: ResourcePaths;
  readonly #limits: Required<TenantScopeLimits>;
  readonly #audit: AuditWriter;
  readonly #anonymous: UnauthenticatedAuditBound;
  readonly #guard: OverrideGuard;
  readonly #runTool: ReturnType<typeof callPipeline>;
  readonly #diag: Diag;
  readonly #stateless: boolean;
  readonly #pool: ServerPool;
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
    const log = options.log ?? stderrLogWriter;
    this.#diag = diagWriter(log);
    this.#audit = new AuditWriter(options.audit, options.onAuditFailure, this.#diag);
    this.#anonymous = new UnauthenticatedAuditBound((e) => options.audit.write(e), options.unauthenticatedAudit);
    this.#guard = new OverrideGuard({
      ...options.tenantOverride,
      tool: (name) => this.#tools.get(name),
      audit: this.#audit,
    });
    this.#limits = withDefaults(options.limits ?? {});
    this.#runTool = callPipeline({
      directory: options.directory,
      limiter: options.limiter ?? new MemoryCallLimiter(),
      defaults: this.#limits,
      providers: options.providers ?? {},
      audit: this.#audit,
      log,
      diag: this.#diag,
    });
    this.#sessions = new SessionStore({
      maxSessions: this.#limits.maxSessions,
      idleTimeoutMs: this.#limits.sessionIdleTimeoutMs,
      onUndelivered: (session, requestId, err) => this.#undelivered(session, requestId, err),
    });
    this.#pool = new ServerPool({ maxIdlePerKey: this.#limits.maxIdleServers });
    this.#paths = resourcePaths(options.verifier.audience);
  }

  /** Path the MCP endpoint is served on (the path of the audience URI). */
  get mcpPath(): string {
    return this.#paths.mcpPath;
  }
  /** Path of the RFC 9728 protected resource metadata. */
  get metadataPath(): string {
    return this.#paths.metadataPath;
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
    return protectedResourceMetadata(this.#opts.verifier, this.#opts.resourceName);
  }

  /**
   * The framework-neutral Node handler. Serves the MCP endpoint and the protected resource
   * metadata; answers 404 for any other path. `body` is an already-parsed JSON body, if any.
   */
  async handle(req: IncomingMessage, res: ServerResponse, body?: unknown): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (path === this.#paths.metadataPath && (req.method === 'GET' || req.method === 'HEAD')) {
        return sendJson(res, 200, this.protectedResourceMetadata());
      }
      if (path !== this.#paths.mcpPath) return sendJson(res, 404, { error: 'not_found' });
      if (this.#draining) return sendUnavailable(res, 'server is shutting down');
      if (req.method !== 'GET') this.#track(res);
      await this.#handleMcp(req, res, body);
    } catch (err) {
      this.#diag('error', 'request failed', err);
      if (!res.headersSent) {
        sendError(res, isTenantScopeError(err) ? err : new TenantScopeError('INTERNAL', 'internal error'));
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
    this.#sessions.stopSweeper();
    await this.#anonymous.flush().catch((err) => this.#diag('error', 'audit write failed', err));
    await this.#sessions.closeAll();
    this.#pool.clear();
  }

  // --- HTTP: one request, step by step --------------------------------------------------------

  async #handleMcp(req: IncomingMessage, res: ServerResponse, preParsed: unknown): Promise<void> {
    const started = performance.now();
    const ip = this.#opts.clientAddress ? this.#opts.clientAddress(req) : (req.socket.remoteAddress ?? null);
    // 1. Authenticate: every request, before anything else is looked at.
    const tenant = await this.#authenticate(req, res, ip, started);
    if (!tenant) return;
    // Every refusal from here on is of an authenticated request: audited in the caller's stream.
    const caller: Caller = { tenant, ip, started };
    const method = req.method ?? 'GET';
    if (!['GET', 'POST', 'DELETE'].includes(method)) {
      res.setHeader('Allow', 'GET, POST, DELETE');
      return this.#refuse(res, caller, new TenantScopeError('METHOD_NOT_ALLOWED', 'method not allowed'), 405);
    }
    // 2. Body (POST only).
    const body = method === 'POST' ? await this.#body(req, res, preParsed, caller) : undefined;
    if (body === UNREADABLE) return;
    if (this.#stateless) return this.#handleStateless(req, res, body, caller);
    // 3. Session: bind on initialize, match on every later request.
    const session = await this.#session(req, res, body, caller);
    if (!session) return;
    // 4. Guard tools/call arguments before the SDK sees them.
    if (method === 'POST' && (await this.#guarded(res, body, session, caller))) return;
    // 5. Hand over to the SDK transport with the verified principal attached.
    attachPrincipal(req, { tenant, ip });
    await session.transport.handleRequest(req, res, body);
    if (method === 'DELETE') await this.#sessions.close(session);
  }

  /** The request's tenant, or undefined once its refusal is answered (and audited). */
  async #authenticate(req: IncomingMessage, res: ServerResponse, ip: string | null, started: number) {
    try {
      return await this.#opts.verifier.verify(bearer(req));
    } catch (err) {
      const e = isTenantScopeError(err) ? err : new TenantScopeError('AUTH_MALFORMED', 'token could not be verified');
      // Attributed only when the signature verified (see the verifier's hints); null otherwise.
      const hint = typeof e.details?.tenantHint === 'string' ? e.details.tenantHint : null;
      const subjectHint = hint && typeof e.details?.subjectHint === 'string' ? e.details.subjectHint : null;
      const record = {
        tenant_id: hint,
        session_id: null, // an unauthenticated request's session header proves nothing
        subject: subjectHint,
        event_type: 'auth_failure',
        tool_name: null,
        args_hash: null,
        result_status: 'denied' as const,
        reason: e.code,
        latency_ms: performance.now() - started,
        ip_address: ip,
      };
      // Unattributed failures share one stream anyone can write to: rate-bounded, then summarised.
      const via = hint === null ? this.#anonymous.record.bind(this.#anonymous) : undefined;
      await this.#audit.write(record, via).catch(() => undefined); // refused whether or not its audit lands
      sendAuthError(res, e, this.#paths.metadataUrl);
      return undefined;
    }
  }

  /** The POST body, or UNREADABLE once the refusal is answered (and audited). */
  async #body(req: IncomingMessage, res: ServerResponse, preParsed: unknown, caller: Caller): Promise<unknown> {
    if (preParsed !== undefined) return preParsed;
    try {
      return await readJson(req, this.#limits.maxBodyBytes);
    } catch (err) {
      const e = isTenantScopeError(err) ? err : new TenantScopeError('BAD_REQUEST', 'invalid body');
      await this.#audit.write(refusalRecord(caller, e.code));
      sendBodyError(res, e);
      return UNREADABLE;
    }
  }

  /** The request's session (opened on initialize), or undefined once its refusal is answered. */
  async #session(req: IncomingMessage, res: ServerResponse, body: unknown, caller: Caller) {
    const id = header(req, 'mcp-session-id');
    const { tenant } = caller;
    if (id === undefined) {
      if (req.method !== 'POST' || !isInitialize(body)) {
        const e = new TenantScopeError('SESSION_REQUIRED', 'no session: send initialize first');
        return void (await this.#refuse(res, caller, e, 400, body));
      }
      try {
        return await this.#openSession(tenant);
      } catch (err) {
        return void (await this.#refuseSession(res, body, err, caller));
      }
    }
    const found = this.#sessions.get(id);
    if (!found) {
      const e = new TenantScopeError('SESSION_NOT_FOUND', 'session not found');
      return void (await this.#refuse(res, caller, e, 404, body));
    }
    if (found.tenantId !== tenant.id || found.subject !== tenant.subject) {
      // Another principal presenting this session id: refuse, audit in the caller's stream,
      // and leave the session itself untouched.
      const e = new TenantScopeError('SESSION_MISMATCH', 'session belongs to another principal');
      await this.#audit.write(sessionDeniedRecord(caller, e.code));
      return void sendError(res, e, idOf(body), 403);
    }
    this.#sessions.touch(found);
    return found;
  }

  /** True when the override guard answered the request itself (a refused call). */
  async #guarded(res: ServerResponse, body: unknown, session: Session, caller: Caller): Promise<boolean> {
    const refusal = await this.#guard.check(body, session, caller);
    if (refusal) sendJson(res, 200, refusal);
    return refusal !== undefined;
  }

  /** Refuses an authenticated request; audited in the caller's stream (as a denied call for a tools/call). */
  async #refuse(res: ServerResponse, caller: Caller, e: TenantScopeError, status: number, body?: unknown) {
    await this.#audit.write(refusalRecord(caller, e.code, body));
    sendError(res, e, idOf(body), status);
  }

  /** Refuses a request that could not be given a session (or, stateless, a tool set); audited. */
  async #refuseSession(res: ServerResponse, body: unknown, err: unknown, caller: Caller): Promise<void> {
    const e = isTenantScopeError(err) ? err : new TenantScopeError('INTERNAL', 'session could not be opened');
    await this.#audit.write(sessionDeniedRecord(caller, e.code));
    if (e.code === 'INSUFFICIENT_SCOPE') return sendAuthError(res, e, this.#paths.metadataUrl);
    sendError(res, e, idOf(body));
  }

  /**
   * Stateless mode: this request alone, on a fresh SDK transport (JSON responses) and a server
   * with the tenant's tools (pooled by tool set). The token was verified above; the tool set is
   * computed from the current policy and this token, exactly as when a session opens.
   */
  async #handleStateless(req: IncomingMessage, res: ServerResponse, body: unknown, caller: Caller): Promise<void> {
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      const e = new TenantScopeError('METHOD_NOT_ALLOWED', 'this server is stateless: POST only, no sessions');
      return this.#refuse(res, caller, e, 405);
    }
    let tools: Set<string>;
    try {
      tools = await this.#grantedTools(caller.tenant);
    } catch (err) {
      return this.#refuseSession(res, body, err, caller);
    }
    const key = toolSetKey(tools);
    // initialize stores the client's capabilities on the server: such a server is not reused.
    const reusable = !isInitialize(body);
    const server = this.#pool.take(key, () => this.#buildServer(tools, statelessBinding));
    const session = statelessSession(caller.tenant, server, tools);
    if (await this.#guarded(res, body, session, caller)) {
      if (reusable) this.#pool.give(key, server);
      return;
    }
    const principal = attachPrincipal(req, { tenant: caller.tenant, ip: caller.ip, session });
    bindStateless(principal);
    watchDelivery(session.transport, (requestId, err) => this.#undelivered(session, requestId, err));
    await server.connect(session.transport);
    res.once('close', () => {
      unbindStateless(principal);
      void server.close().then(
        () => reusable && !this.#closed && this.#pool.give(key, server),
        () => undefined,
      );
    });
    await session.transport.handleRequest(req, res, body);
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
    return this.#sessions.open(tenant, tools, perTenantMax, (sessionOf) => this.#buildServer(tools, sessionOf));
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
        (args: Record<string, unknown>, extra) => this.#runTool({ session: sessionOf(extra), def, args, extra }),
      );
    }
    return server;
  }

  /** A response the client never got: the audit says so, after the outcome it already recorded. */
  #undelivered(session: Session, requestId: string | number, err: unknown): void {
    this.#diag('warn', 'response not delivered', err, { tenant_id: session.tenantId, request_id: String(requestId) });
    void this.#audit
      .write({
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
      })
      .catch(() => undefined); // already logged by the writer
  }
}

/** Creates a TenantScope server. */
export function tenantScope<P extends Providers = Record<never, never>>(
  options: TenantScopeOptions<P>,
): TenantScope<P> {
  return new TenantScope(options);
}

/** A body that could not be read (its refusal is already answered). */
const UNREADABLE: unique symbol = Symbol('unreadable body');

function withDefaults(l: TenantScopeLimits): Required<TenantScopeLimits> {
  return {
    callsPerMinute: l.callsPerMinute ?? 600,
    maxConcurrentCalls: l.maxConcurrentCalls ?? 32,
    maxSessionsPerTenant: l.maxSessionsPerTenant ?? 16,
    maxSessions: l.maxSessions ?? 10_000,
    sessionIdleTimeoutMs: l.sessionIdleTimeoutMs ?? 15 * 60_000,
    maxBodyBytes: l.maxBodyBytes ?? 1024 * 1024,
    maxIdleServers: l.maxIdleServers ?? 64,
    maxResultBytes: checkResultCap(l.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES, 'limits'),
  };
}
