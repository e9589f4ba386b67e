/**
 * mcp-overhead: a bare MCP SDK server and a tenantscope server with the same trivial tool, over
 * loopback Streamable HTTP, with the official SDK client at concurrency 8. Prints p50, p99 and
 * throughput for both and their ratio. Rounds alternate between the servers so that machine
 * noise hits all alike. Two pairs: session mode (ratios against the bare SDK with sessions) and
 * stateless mode (ratios against the bare SDK's stateless transport: a fresh McpServer and
 * transport per request, JSON responses, as the SDK's stateless example does).
 *
 *   node test/bench/mcp-overhead/main.ts            (BENCH_CALLS per round, default 2000; BENCH_ROUNDS, default 3)
 * On a busy machine prefer many short rounds (BENCH_CALLS=100 BENCH_ROUNDS=30): drift hits all alike.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { JsonlAuditSink, StaticTenantDirectory, tenantScope } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import { z } from 'zod';

const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 8;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
}

/** A loopback HTTP server running `handler`. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer(handler);
  const url = await listen(http);
  return {
    url,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

function bareServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  return serve(async (req, res) => {
    const sid = req.headers['mcp-session-id'] as string | undefined;
    let transport = sid ? sessions.get(sid) : undefined;
    if (!transport) {
      const server = new McpServer({ name: 'bare', version: '0' });
      server.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, ({ text }) => ({
        content: [{ type: 'text', text }],
      }));
      const id = randomUUID();
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
      sessions.set(id, t);
      await server.connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res);
  });
}

function bareStatelessServer(): Promise<{ url: string; close(): Promise<void> }> {
  return serve(async (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST' }).end();
      return;
    }
    const server = new McpServer({ name: 'bare', version: '0' });
    server.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, ({ text }) => ({
      content: [{ type: 'text', text }],
    }));
    const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void server.close());
    await server.connect(t);
    await t.handleRequest(req, res);
  });
}

async function scopedServer(fsync: boolean, mode: 'session' | 'stateless' = 'session', maxIdleServers?: number) {
  const http = createServer();
  const url = await listen(http);
  const issuer = await createTestIssuer({ audience: url });
  const auditDir = await mkdtemp(join(tmpdir(), 'bench-audit-'));
  const audit = new JsonlAuditSink({ dir: auditDir, fsync });
  const scope = tenantScope({
    verifier: await issuer.verifier(),
    directory: new StaticTenantDirectory({
      acme: { tools: ['echo'], limits: { callsPerMinute: 10_000_000, maxConcurrentCalls: 1000 } },
    }),
    audit,
    log: () => {},
    mode,
    limits: { maxIdleServers },
  });
  scope.tool({
    name: 'echo',
    description: 'echo',
    input: { text: z.string() },
    handler: ({ text }) => ({ content: [{ type: 'text' as const, text }] }),
  });
  http.on('request', (req, res) => void scope.handle(req, res));
  return {
    url,
    token: await issuer.mint({ tenant: 'acme', ttlSeconds: 3600 }),
    async close() {
      await scope.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await audit.close();
      await rm(auditDir, { recursive: true, force: true });
    },
  };
}

async function clients(url: string, token?: string): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const c = new Client({ name: 'bench', version: '0' });
      const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
      await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
      return c;
    }),
  );
}

async function run(cs: Client[], calls: number): Promise<{ lat: number[]; seconds: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    cs.map(async (c) => {
      while (next < calls) {
        next++;
        const s = performance.now();
        await c.callTool({ name: 'echo', arguments: { text: 'hello' } });
        lat.push(performance.now() - s);
      }
    }),
  );
  return { lat, seconds: (performance.now() - t0) / 1000 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const bare = await bareServer();
const ours = await scopedServer(true);
const oursNoSync = await scopedServer(false);
const bareSl = await bareStatelessServer();
const oursSl = await scopedServer(true, 'stateless');
const oursSlNoSync = await scopedServer(false, 'stateless');
// Where the time goes: the same binding building an McpServer and registering tools per request.
const oursSlFresh = await scopedServer(false, 'stateless', 0);
const subjects = {
  'bare SDK': await clients(bare.url),
  'tenantscope (audit fsync)': await clients(ours.url, ours.token),
  'tenantscope (audit no fsync)': await clients(oursNoSync.url, oursNoSync.token),
  'bare SDK stateless': await clients(bareSl.url),
  'stateless (audit fsync)': await clients(oursSl.url, oursSl.token),
  'stateless (audit no fsync)': await clients(oursSlNoSync.url, oursSlNoSync.token),
  'stateless, no reuse (no fsync)': await clients(oursSlFresh.url, oursSlFresh.token),
};
/** The baseline each subject is compared with: the bare SDK in the same mode. */
const baselineOf = (name: string) => (name.startsWith('stateless') ? 'bare SDK stateless' : 'bare SDK');
const results: Record<string, { lat: number[]; seconds: number; calls: number }> = {};
for (const [name, cs] of Object.entries(subjects)) {
  await run(cs, Number(process.env.BENCH_WARMUP ?? 1000)); // warm-up: JIT, pools, schema caches
  results[name] = { lat: [], seconds: 0, calls: 0 };
}
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, cs] of Object.entries(subjects)) {
    const out = await run(cs, CALLS);
    const acc = results[name] as { lat: number[]; seconds: number; calls: number };
    acc.lat.push(...out.lat);
    acc.seconds += out.seconds;
    acc.calls += CALLS;
  }
}
console.log(
  `mcp-overhead: ${ROUNDS} rounds x ${CALLS} calls, concurrency ${CONCURRENCY}, loopback Streamable HTTP, Node ${process.version}`,
);
const rows: Record<string, { p50: number; p99: number; rps: number }> = {};
for (const [name, r] of Object.entries(results)) {
  const sorted = [...r.lat].sort((a, b) => a - b);
  rows[name] = { p50: pct(sorted, 50), p99: pct(sorted, 99), rps: r.calls / r.seconds };
}
for (const [name, row] of Object.entries(rows)) {
  const base = rows[baselineOf(name)] as { p50: number; p99: number; rps: number };
  console.log(
    `${name.padEnd(30)} p50 ${row.p50.toFixed(3)} ms  p99 ${row.p99.toFixed(3)} ms  ${row.rps.toFixed(0)} calls/s` +
      (name.startsWith('bare SDK')
        ? ''
        : `  | ratio p50 ${(row.p50 / base.p50).toFixed(3)}  p99 ${(row.p99 / base.p99).toFixed(3)}  throughput ${(row.rps / base.rps).toFixed(3)}`),
  );
}
for (const cs of Object.values(subjects)) await Promise.all(cs.map((c) => c.close()));
await Promise.all([
  bare.close(),
  ours.close(),
  oursNoSync.close(),
  bareSl.close(),
  oursSl.close(),
  oursSlNoSync.close(),
  oursSlFresh.close(),
]);
