/**
 * A minimal multi-tenant MCP server on the plain MCP SDK (no tenantscope), with deliberate holes,
 * for `tenantscope check` to find. What it gets right: 401 + RFC 9728 metadata, signature, alg
 * allow-list (ES256 only), audience, issuer, nbf. Its holes, each one a check that must fail:
 *  - it accepts expired tokens (exp is not checked)          -> tokens.expired
 *  - it has no lifetime cap                                   -> tokens.lifetime-over-cap
 *  - tools/list shows every tool to every tenant              -> tools.visible.*
 *  - a tool of another tenant is refused with its own message -> tools.foreign-like-unknown.*
 *  - `whoami` takes a tenant_id argument and uses it          -> tools.tenant-argument.*
 *  - a session serves any valid token, whoever opened it      -> sessions.cross-tenant (and cross-subject)
 *  - every tenant's audit events go to one shared stream      -> audit.streams
 */
import { randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, jwtVerify } from 'jose';
import { z } from 'zod';

export const HOLEY_TENANTS: Record<string, string[]> = {
  acme: ['whoami', 'acme_report'],
  globex: ['whoami', 'globex_report'],
};

export interface HoleyServer {
  url: string;
  close(): Promise<void>;
}

export async function startHoleyServer(o: {
  jwks: JSONWebKeySet;
  issuer: string;
  auditDir: string;
  /** Serve without sessions (a server per request), as the MCP stateless mode does. */
  stateless?: boolean;
}): Promise<HoleyServer> {
  const http: Server = createServer();
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const port = (http.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}/mcp`;
  const metadata = `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`;
  const keys = createLocalJWKSet(o.jwks);
  const sessions = new Map<string, StreamableHTTPServerTransport>();

  async function verify(token: string): Promise<{ tenant: string; sub: string } | null> {
    try {
      const claims = decodeJwt(token);
      const now = Date.now();
      // HOLE: an expired token is checked "as of" just before it expired, so expiry never bites.
      const at =
        typeof claims.exp === 'number' && claims.exp * 1000 <= now ? new Date(claims.exp * 1000 - 1000) : new Date(now);
      const { payload } = await jwtVerify(token, keys, {
        issuer: o.issuer,
        audience: url,
        algorithms: ['ES256'],
        currentDate: at,
      });
      const tenant = payload.tenant_id;
      if (typeof tenant !== 'string' || !HOLEY_TENANTS[tenant]) return null;
      return { tenant, sub: String(payload.sub) };
    } catch {
      return null;
    }
  }

  function audit(tenant: string, sessionId: string | undefined, sub: string, tool: string): Promise<void> {
    const event = {
      timestamp: new Date().toISOString(),
      tenant_id: tenant,
      session_id: sessionId ?? null,
      subject: sub,
      event_type: 'tool_call',
      tool_name: tool,
      result_status: 'ok',
    };
    // HOLE: one stream for everyone.
    return appendFile(join(o.auditDir, 'all.jsonl'), `${JSON.stringify(event)}\n`);
  }

  function mcpFor(owner: { tenant: string; sub: string }, sessionId: () => string | undefined): McpServer {
    const server = new McpServer({ name: 'holey', version: '0.0.0' });
    const allowed = HOLEY_TENANTS[owner.tenant] ?? [];
    const guard = (tool: string) => {
      if (!allowed.includes(tool)) {
        // HOLE: a foreign tool is refused with a message an unknown tool never gets.
        return {
          isError: true,
          content: [{ type: 'text' as const, text: `${tool} is not enabled for ${owner.tenant}` }],
        };
      }
      return null;
    };
    // HOLE: every tool is registered for every tenant, so tools/list shows them all.
    server.registerTool(
      'whoami',
      { description: 'who am I', inputSchema: { tenant_id: z.string().optional() } },
      async ({ tenant_id }) => {
        // HOLE: the tenant comes from the arguments when given.
        const tenant = tenant_id ?? owner.tenant;
        await audit(owner.tenant, sessionId(), owner.sub, 'whoami');
        return { content: [{ type: 'text', text: JSON.stringify({ tenant, customers: [`${tenant}-customer-1`] }) }] };
      },
    );
    for (const name of ['acme_report', 'globex_report']) {
      server.registerTool(name, { description: name }, async () => {
        const refused = guard(name);
        if (refused) return refused;
        await audit(owner.tenant, sessionId(), owner.sub, name);
        return { content: [{ type: 'text', text: `${name} for ${owner.tenant}` }] };
      });
    }
    return server;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/.well-known/oauth-protected-resource/mcp') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ resource: url, authorization_servers: [o.issuer] }));
      return;
    }
    if (path !== '/mcp') {
      res.statusCode = 404;
      res.end();
      return;
    }
    const auth = req.headers.authorization ?? '';
    const who = auth.startsWith('Bearer ') ? await verify(auth.slice(7)) : null;
    if (!who) {
      res.statusCode = 401;
      res.setHeader('WWW-Authenticate', `Bearer resource_metadata="${metadata}"`);
      res.end(JSON.stringify({ error: 'unauthorized' }));
      return;
    }
    if (o.stateless) {
      // Stateless: a server and transport per request, for the verified caller.
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await mcpFor(who, () => undefined).connect(t);
      res.on('close', () => void t.close());
      await t.handleRequest(req, res);
      return;
    }
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const transport = sessions.get(sid);
      if (!transport) {
        res.statusCode = 404;
        res.end();
        return;
      }
      // HOLE: the session is not bound to the tenant (or subject) that opened it.
      await transport.handleRequest(req, res);
      return;
    }
    let transport: StreamableHTTPServerTransport | undefined;
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        if (transport) sessions.set(id, transport);
      },
    });
    transport.onclose = () => {
      if (transport?.sessionId) sessions.delete(transport.sessionId);
    };
    const t = transport;
    await mcpFor(who, () => t.sessionId).connect(t);
    await t.handleRequest(req, res);
  }

  http.on('request', (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  });
  return {
    url,
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => undefined);
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
