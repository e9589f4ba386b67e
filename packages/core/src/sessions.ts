import { randomBytes, randomUUID } from 'node:crypto';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { watchDelivery } from './delivery.ts';
import { TenantScopeError } from './errors.ts';
import type { Tenant } from './tenant.ts';

/** One MCP session, bound to the tenant and subject of the token that opened it. */
export interface Session {
  readonly id: string;
  readonly tenantId: string;
  readonly subject: string;
  readonly server: McpServer;
  readonly transport: StreamableHTTPServerTransport;
  /** The tools this session's server registered (policy ∩ token when it opened). */
  readonly registered: ReadonlySet<string>;
  lastSeen: number;
}

/** What the SDK passes a tool handler: the principal attached to the request it came in. */
export type CallExtra = { authInfo?: { extra?: Record<string, unknown> } };

/** Builds the server of a session; its tool handlers find their session through `sessionOf`. */
export type ServerBuilder = (sessionOf: (extra: CallExtra) => Session) => McpServer;

/** Reports a response the client never received. */
export type Undelivered = (session: Session, requestId: string | number, err: unknown) => void;

export interface SessionStoreOptions {
  /** Open sessions across all tenants; past it `open` throws SESSION_LIMIT. */
  maxSessions: number;
  /** Idle time after which a session is closed by the sweeper. */
  idleTimeoutMs: number;
  onUndelivered: Undelivered;
}

/**
 * The sessions of this process: bounded in total (new ones refused past `maxSessions`) and per
 * tenant (the tenant's least recently used one is closed, so one tenant never evicts another's),
 * and swept when idle. Ids are 256 random bits.
 */
export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  /** Per tenant, in least-recently-used order. */
  readonly #byTenant = new Map<string, Map<string, Session>>();
  readonly #opts: SessionStoreOptions;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: SessionStoreOptions) {
    this.#opts = options;
  }

  /** Open sessions (all tenants). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Open sessions of one tenant. */
  countOf(tenantId: string): number {
    return this.#byTenant.get(tenantId)?.size ?? 0;
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Marks a session used now: it becomes its tenant's most recently used. */
  touch(session: Session): void {
    session.lastSeen = Date.now();
    const per = this.#byTenant.get(session.tenantId);
    per?.delete(session.id);
    per?.set(session.id, session);
  }

  /**
   * Opens a session for this tenant, first closing its least recently used ones down to
   * `perTenantMax - 1`. Throws SESSION_LIMIT when the server holds `maxSessions`.
   */
  async open(tenant: Tenant, tools: ReadonlySet<string>, perTenantMax: number, build: ServerBuilder): Promise<Session> {
    const mine = this.#byTenant.get(tenant.id) ?? new Map<string, Session>();
    while (mine.size >= perTenantMax) {
      const oldest = mine.values().next().value as Session | undefined;
      if (!oldest) break;
      await this.close(oldest);
    }
    if (this.#sessions.size >= this.#opts.maxSessions) {
      throw new TenantScopeError('SESSION_LIMIT', 'server session capacity reached');
    }
    this.#startSweeper();
    const id = randomBytes(32).toString('base64url');
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const session: Session = {
      id,
      tenantId: tenant.id,
      subject: tenant.subject,
      server: build(() => session),
      transport,
      registered: tools,
      lastSeen: Date.now(),
    };
    watchDelivery(transport, (requestId, err) => this.#opts.onUndelivered(session, requestId, err));
    transport.onclose = () => this.#forget(session);
    await session.server.connect(transport);
    this.#sessions.set(id, session);
    mine.set(id, session);
    this.#byTenant.set(tenant.id, mine);
    return session;
  }

  /** Closes a session (its server and transport) and forgets it. */
  async close(session: Session): Promise<void> {
    this.#forget(session);
    await session.server.close().catch(() => undefined);
  }

  /** Stops the idle sweeper. */
  stopSweeper(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Stops the sweeper and closes every session. */
  async closeAll(): Promise<void> {
    this.stopSweeper();
    await Promise.allSettled([...this.#sessions.values()].map((s) => this.close(s)));
  }

  /** Closes every session idle since before `now - idleTimeoutMs` (what the sweeper runs). */
  sweep(now = Date.now()): void {
    const cutoff = now - this.#opts.idleTimeoutMs;
    for (const s of this.#sessions.values()) if (s.lastSeen < cutoff) void this.close(s);
  }

  #forget(session: Session): void {
    this.#sessions.delete(session.id);
    const mine = this.#byTenant.get(session.tenantId);
    if (mine) {
      mine.delete(session.id);
      if (mine.size === 0) this.#byTenant.delete(session.tenantId);
    }
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.#opts.idleTimeoutMs / 2)));
    this.#sweeper = setInterval(() => this.sweep(), every);
    this.#sweeper.unref();
  }
}

// --- stateless mode ------------------------------------------------------------------------------

/** Principals attached by a stateless request that is being answered now. */
const liveBindings = new WeakSet<object>();

/**
 * A stateless request's one-off session: a fresh SDK transport (JSON responses) on a pooled
 * server, with a per-request id (the audit's `session_id` of a stateless call).
 */
export function statelessSession(tenant: Tenant, server: McpServer, tools: ReadonlySet<string>): Session {
  return {
    id: randomUUID(),
    tenantId: tenant.id,
    subject: tenant.subject,
    server,
    transport: new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true }),
    registered: tools,
    lastSeen: Date.now(),
  };
}

/** Marks a stateless request's principal as live until `unbind` (its response closed). */
export function bindStateless(principal: object): void {
  liveBindings.add(principal);
}

export function unbindStateless(principal: object): void {
  liveBindings.delete(principal);
}

/** The session a stateless request attached to its verified principal (never from the client). */
export function statelessBinding(extra: CallExtra): Session {
  const bound = extra.authInfo?.extra;
  if (!bound || !liveBindings.has(bound) || !bound.session) {
    throw new TenantScopeError('NO_TENANT_CONTEXT', 'no verified principal for this call');
  }
  return bound.session as Session;
}
