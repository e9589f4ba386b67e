/**
 * A real tenantscope MCP server on loopback for the secrets suites: the caller's providers and
 * tools, a JSONL audit sink teed with a memory sink, and every `ctx.logger` record captured, so a
 * test can grep every sink for a secret value.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  JsonlAuditSink,
  MemoryAuditSink,
  type ResourceProvider,
  StaticTenantDirectory,
  type TenantPolicy,
  type TenantScope,
  type ToolDefinition,
  teeAuditSink,
  tenantScope,
} from '@tenantscope/core';
import { createTestIssuer, type TestIssuer } from '@tenantscope/testkit';

export interface SecretsServer {
  url: string;
  issuer: TestIssuer;
  scope: TenantScope<Record<string, ResourceProvider<unknown>>>;
  memory: MemoryAuditSink;
  logs: Record<string, unknown>[];
  /** An MCP SDK client for `tenant`. */
  connect(tenant: string): Promise<Client>;
  /** Everything every sink wrote, as one string: audit JSONL files, memory events, log records. */
  allSinkOutput(): Promise<string>;
  close(): Promise<void>;
}

export async function startSecretsServer(options: {
  tenants: Record<string, TenantPolicy>;
  providers: Record<string, ResourceProvider<unknown>>;
  // biome-ignore lint/suspicious/noExplicitAny: tools type their own ctx
  tools: ToolDefinition<any, any>[];
}): Promise<SecretsServer> {
  const http: Server = createServer();
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const url = `http://127.0.0.1:${port}/mcp`;
  const issuer = await createTestIssuer({ audience: url });
  const auditDir = await mkdtemp(join(tmpdir(), 'tenantscope-secrets-audit-'));
  const jsonl = new JsonlAuditSink({ dir: auditDir, fsync: false });
  const memory = new MemoryAuditSink();
  const logs: Record<string, unknown>[] = [];
  const scope = tenantScope({
    verifier: await issuer.verifier(),
    directory: new StaticTenantDirectory(options.tenants),
    audit: teeAuditSink(jsonl, memory),
    providers: options.providers,
    log: (r) => void logs.push(r),
  });
  for (const t of options.tools) scope.tool(t);
  http.on('request', (req, res) => void scope.handle(req, res));
  const clients: Client[] = [];
  return {
    url,
    issuer,
    scope,
    memory,
    logs,
    async connect(tenant) {
      const token = await issuer.mint({ tenant, subject: `agent-${tenant}` });
      const client = new Client({ name: 'secrets-e2e', version: '0.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        }),
      );
      clients.push(client);
      return client;
    },
    async allSinkOutput() {
      const files = await readdir(auditDir);
      const parts = await Promise.all(files.map((f) => readFile(join(auditDir, f), 'utf8')));
      return [...parts, JSON.stringify(memory.events), JSON.stringify(logs)].join('\n');
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
      await scope.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await jsonl.close();
      await rm(auditDir, { recursive: true, force: true });
    },
  };
}

/** The text of a CallToolResult. */
export function text(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}
