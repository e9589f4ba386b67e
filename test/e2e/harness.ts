import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  type AuditEvent,
  type AuditSink,
  currentTenant,
  JsonlAuditSink,
  MemoryRevocationStore,
  StaticTenantDirectory,
  type TenantPolicy,
  type TenantScope,
  type TenantScopeOptions,
  tenantScope,
} from '@tenantscope/core';
import { createTestIssuer, type MintOptions, type TestIssuer } from '@tenantscope/testkit';
import { z } from 'zod';

export interface Harness {
  url: string;
  origin: string;
  issuer: TestIssuer;
  scope: TenantScope;
  audit: JsonlAuditSink;
  auditDir: string;
  revocations: MemoryRevocationStore;
  token(tenant: string, options?: MintOptions): Promise<string>;
  /** An MCP SDK client whose bearer token can be swapped between requests. */
  connect(token: string | (() => string)): Promise<Client>;
  /** Events of one tenant's JSONL stream. */
  stream(tenant: string | null): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

export const DEFAULT_TENANTS: Record<string, TenantPolicy> = {
  acme: { tools: ['whoami', 'echo', 'acme_only', 'slow_whoami'] },
  globex: { tools: ['whoami', 'echo', 'globex_only', 'slow_whoami'] },
  initech: { tools: ['whoami', 'echo', 'slow_whoami'] },
};

/** A real tenantscope server on a loopback port with a small fixed tool set. */
export async function startHarness(
  options: {
    tenants?: Record<string, TenantPolicy>;
    audit?: (jsonl: JsonlAuditSink) => AuditSink;
    scope?: Partial<TenantScopeOptions<Record<never, never>>>;
  } = {},
): Promise<Harness> {
  const http: Server = createServer();
  // Idle keep-alive sockets outlive the client's (undici: 4 s): with Node's 5 s a loaded machine's
  // client reused a socket the server had just closed, and a call failed with ECONNRESET.
  http.keepAliveTimeout = 60_000;
  http.headersTimeout = 65_000;
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const origin = `http://127.0.0.1:${port}`;
  const url = `${origin}/mcp`;
  const issuer = await createTestIssuer({ audience: url });
  const revocations = new MemoryRevocationStore();
  const auditDir = await mkdtemp(join(tmpdir(), 'tenantscope-e2e-audit-'));
  const audit = new JsonlAuditSink({ dir: auditDir, fsync: false });
  const scope = tenantScope({
    verifier: await issuer.verifier({ revocations }),
    directory: new StaticTenantDirectory(options.tenants ?? DEFAULT_TENANTS),
    audit: options.audit ? options.audit(audit) : audit,
    log: () => {},
    ...options.scope,
  });
  scope
    .tool({
      name: 'whoami',
      description: 'who',
      handler: (_a, ctx) => ({ tenant: ctx.tenant.id, subject: ctx.subject }),
    })
    .tool({
      name: 'echo',
      description: 'echo',
      input: { text: z.string().max(1000), nested: z.record(z.string(), z.unknown()).optional() },
      handler: ({ text }, ctx) => ({ tenant: ctx.tenant.id, text }),
    })
    .tool({ name: 'acme_only', description: 'acme only', handler: (_a, ctx) => ({ tenant: ctx.tenant.id }) })
    .tool({ name: 'globex_only', description: 'globex only', handler: (_a, ctx) => ({ tenant: ctx.tenant.id }) })
    .tool({
      name: 'slow_whoami',
      description: 'awaits at random points, then reports the tenant it sees three ways',
      input: { waits: z.array(z.number().int().min(0).max(20)).max(8) },
      handler: async ({ waits }, ctx) => {
        const seen: string[] = [];
        for (const ms of waits) {
          await new Promise((r) => setTimeout(r, ms));
          seen.push(currentTenant().id);
          await Promise.resolve();
        }
        return { ctx: ctx.tenant.id, als: currentTenant().id, seen };
      },
    });
  http.on('request', (req, res) => void scope.handle(req, res));

  return {
    url,
    origin,
    issuer,
    scope,
    audit,
    auditDir,
    revocations,
    token: (tenant, o = {}) => issuer.mint({ subject: `agent-${tenant}`, ...o, tenant }),
    async connect(token) {
      const get = typeof token === 'function' ? token : () => token;
      const client = new Client({ name: 'e2e', version: '0.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(url), {
        fetch: (input, init) => {
          const headers = new Headers(init?.headers);
          headers.set('Authorization', `Bearer ${get()}`);
          return fetch(input, { ...init, headers });
        },
      });
      await client.connect(transport);
      return client;
    },
    async stream(tenant) {
      try {
        const text = await readFile(audit.pathFor(tenant), 'utf8');
        return text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as AuditEvent);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
    },
    async close() {
      await scope.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await audit.close();
      await rm(auditDir, { recursive: true, force: true });
    },
  };
}

/** Raw JSON-RPC over HTTP, for status codes and headers the SDK client hides. */
export async function rawPost(
  url: string,
  token: string | null,
  body: unknown,
  sessionId?: string,
): Promise<{ status: number; headers: Headers; json: unknown; sessionId: string | null }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (sessionId) headers['mcp-session-id'] = sessionId;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = text;
  const ct = res.headers.get('content-type') ?? '';
  if (ct.includes('application/json') && text) json = JSON.parse(text);
  else if (ct.includes('text/event-stream')) {
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .filter(Boolean);
    json = data.length ? JSON.parse(data[data.length - 1] as string) : text;
  }
  return { status: res.status, headers: res.headers, json, sessionId: res.headers.get('mcp-session-id') };
}

export const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

/** The text of a CallToolResult. */
export function text(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}
