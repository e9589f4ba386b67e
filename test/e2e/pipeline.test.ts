/** Fail-closed rules, limits and bounds of the call pipeline, over real HTTP. */
import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  type AuditEvent,
  type CallInfo,
  MemoryAuditSink,
  StaticTenantDirectory,
  ToolError,
  tenantScope,
} from '@tenantscope/core';
import { expressHandler } from '@tenantscope/core/express';
import { createTestIssuer } from '@tenantscope/testkit';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { INIT, rawPost, startHarness, text } from './harness.ts';

describe('fail closed', () => {
  it('a call whose audit event cannot be written returns no result', async () => {
    let failing = false;
    const h = await startHarness({
      audit: (jsonl) => ({
        write: async (e: AuditEvent) => {
          if (failing) throw new Error('disk full');
          await jsonl.write(e);
        },
      }),
    });
    try {
      const c = await h.connect(await h.token('acme'));
      expect((await c.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();
      failing = true;
      const r = await c.callTool({ name: 'whoami', arguments: {} });
      expect(r.isError).toBe(true);
      expect(text(r)).toContain('AUDIT_WRITE_FAILED');
      expect(text(r)).not.toContain('acme');
      await c.close();
    } finally {
      await h.close();
    }
  });

  it('strip mode removes tenant fields, runs the call, and audits the attempt', async () => {
    const h = await startHarness({ scope: { tenantOverride: { mode: 'strip' } } });
    try {
      const c = await h.connect(await h.token('acme'));
      const r = await c.callTool({ name: 'echo', arguments: { text: 'x', tenant_id: 'globex' } });
      expect(r.structuredContent).toEqual({ tenant: 'acme', text: 'x' });
      const ev = (await h.stream('acme')).filter((e) => e.event_type === 'tenant_override');
      expect(ev).toHaveLength(1);
      expect(ev[0]).toMatchObject({ result_status: 'ok', reason: 'TENANT_OVERRIDE_STRIPPED' });
      await c.close();
    } finally {
      await h.close();
    }
  });

  it('an oversized body is refused before any tool runs', async () => {
    const h = await startHarness({ scope: { limits: { maxBodyBytes: 2048 } } });
    try {
      const r = await rawPost(h.url, await h.token('acme'), { ...INIT, pad: 'x'.repeat(4096) });
      expect(r.status).toBe(413);
      expect(h.scope.sessionCount).toBe(0);
    } finally {
      await h.close();
    }
  });
});

describe('limits and bounds', () => {
  it('per-tenant call rate: the tenant over its limit is refused, others are not', async () => {
    const h = await startHarness({
      tenants: {
        acme: { tools: ['whoami'], limits: { callsPerMinute: 5 } },
        globex: { tools: ['whoami'], limits: { callsPerMinute: 5 } },
      },
    });
    try {
      const a = await h.connect(await h.token('acme'));
      const g = await h.connect(await h.token('globex'));
      const results = [];
      for (let i = 0; i < 7; i++) results.push(await a.callTool({ name: 'whoami', arguments: {} }));
      expect(results.filter((r) => !r.isError)).toHaveLength(5);
      expect(text(results[6])).toContain('RATE_LIMITED');
      expect((await g.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();
      expect((await h.stream('acme')).filter((e) => e.reason === 'RATE_LIMITED')).toHaveLength(2);
      await Promise.all([a.close(), g.close()]);
    } finally {
      await h.close();
    }
  });

  it('sessions per tenant are bounded: the least recently used of that tenant is closed, not another tenant’s', async () => {
    const h = await startHarness({ scope: { limits: { maxSessionsPerTenant: 2 } } });
    try {
      const g = await h.connect(await h.token('globex'));
      const tok = await h.token('acme');
      const s1 = (await rawPost(h.url, tok, INIT)).sessionId as string;
      const s2 = (await rawPost(h.url, tok, INIT)).sessionId as string;
      const s3 = (await rawPost(h.url, tok, INIT)).sessionId as string;
      expect(h.scope.sessionCount).toBe(3); // 2 acme + 1 globex
      expect((await rawPost(h.url, tok, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, s1)).status).toBe(404);
      for (const s of [s2, s3]) {
        await rawPost(h.url, tok, { jsonrpc: '2.0', method: 'notifications/initialized' }, s);
        expect((await rawPost(h.url, tok, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, s)).status).toBe(200);
      }
      expect((await g.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();
      await g.close();
    } finally {
      await h.close();
    }
  });

  it('the server-wide session cap refuses new sessions with 503 instead of evicting other tenants', async () => {
    const h = await startHarness({ scope: { limits: { maxSessions: 2 } } });
    try {
      expect((await rawPost(h.url, await h.token('acme'), INIT)).status).toBe(200);
      expect((await rawPost(h.url, await h.token('globex'), INIT)).status).toBe(200);
      const third = await rawPost(h.url, await h.token('initech'), INIT);
      expect(third.status).toBe(503);
      expect(JSON.stringify(third.json)).toContain('SESSION_LIMIT');
    } finally {
      await h.close();
    }
  });

  it('idle sessions expire', async () => {
    const h = await startHarness({ scope: { limits: { sessionIdleTimeoutMs: 500 } } });
    try {
      const tok = await h.token('acme');
      const sid = (await rawPost(h.url, tok, INIT)).sessionId as string;
      expect(h.scope.sessionCount).toBe(1);
      await new Promise((r) => setTimeout(r, 1700));
      expect(h.scope.sessionCount).toBe(0);
      expect((await rawPost(h.url, tok, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, sid)).status).toBe(404);
    } finally {
      await h.close();
    }
  });
});

describe('tool results', () => {
  it('hides unexpected handler errors, shows ToolError messages, and masks registered secret values', async () => {
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const port = (http.address() as { port: number }).port;
    const url = `http://127.0.0.1:${port}/mcp`;
    const issuer = await createTestIssuer({ audience: url });
    const audit = new MemoryAuditSink();
    const logs: Record<string, unknown>[] = [];
    const scope = tenantScope({
      verifier: await issuer.verifier(),
      directory: new StaticTenantDirectory({ acme: { tools: ['*'] } }),
      audit,
      log: (r) => logs.push(r),
      providers: {
        vault: {
          forCall: (call: CallInfo) => ({
            read: () => {
              const v = `sk-${call.tenant.id}-0123456789`;
              call.addRedaction(v);
              return v;
            },
          }),
        },
      },
    });
    scope
      .tool({
        name: 'boom',
        description: 'throws a driver-like error',
        handler: () => {
          throw new Error('duplicate key value violates unique constraint; Key (id)=(globex-secret-row)');
        },
      })
      .tool({
        name: 'told',
        description: 'throws a ToolError',
        handler: () => {
          throw new ToolError('quota exceeded for this month', { code: 'QUOTA' });
        },
      })
      .tool({
        name: 'leaky',
        description: 'returns and logs its secret',
        input: { n: z.number().optional() },
        handler: (_a, ctx) => {
          const key = ctx.vault.read();
          ctx.logger.info('using key', { key });
          return { key, note: `the key is ${key}` };
        },
      });
    http.on('request', (req, res) => void scope.handle(req, res));
    const client = new Client({ name: 't', version: '0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { Authorization: `Bearer ${await issuer.mint({ tenant: 'acme' })}` } },
      }),
    );
    try {
      const boom = await client.callTool({ name: 'boom', arguments: {} });
      expect(boom.isError).toBe(true);
      expect(text(boom)).toBe('INTERNAL: the tool failed');
      const told = await client.callTool({ name: 'told', arguments: {} });
      expect(text(told)).toBe('QUOTA: quota exceeded for this month');
      const leaky = await client.callTool({ name: 'leaky', arguments: {} });
      expect(JSON.stringify(leaky)).not.toContain('sk-acme-0123456789');
      expect(JSON.stringify(leaky)).toContain('[REDACTED]');
      expect(JSON.stringify(logs)).not.toContain('sk-acme-0123456789');
      expect(JSON.stringify(audit.events)).not.toContain('sk-acme-0123456789');
      expect(audit.events.some((e) => e.event_type === 'secret_redacted' && e.tool_name === 'leaky')).toBe(true);
      expect(audit.events.find((e) => e.tool_name === 'boom')).toMatchObject({
        result_status: 'error',
        reason: 'INTERNAL',
      });
    } finally {
      await client.close();
      await scope.close();
      http.closeAllConnections();
      http.close();
    }
  });
});

describe('express adapter', () => {
  it('serves the MCP endpoint and metadata, with or without express.json()', async () => {
    for (const parseJson of [false, true]) {
      const app = express();
      if (parseJson) app.use(express.json());
      const http = createServer(app);
      await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
      const port = (http.address() as { port: number }).port;
      const url = `http://127.0.0.1:${port}/mcp`;
      const issuer = await createTestIssuer({ audience: url });
      const scope = tenantScope({
        verifier: await issuer.verifier(),
        directory: new StaticTenantDirectory({ acme: { tools: ['whoami'] } }),
        audit: new MemoryAuditSink(),
        log: () => {},
      });
      scope.tool({ name: 'whoami', description: 'w', handler: (_a, ctx) => ({ tenant: ctx.tenant.id }) });
      app.use(expressHandler(scope));
      app.get('/health', (_req, res) => {
        res.send('ok');
      });
      try {
        expect(await (await fetch(`http://127.0.0.1:${port}/health`)).text()).toBe('ok');
        expect((await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`)).status).toBe(200);
        expect((await rawPost(url, null, INIT)).status).toBe(401);
        const client = new Client({ name: 't', version: '0' });
        await client.connect(
          new StreamableHTTPClientTransport(new URL(url), {
            requestInit: { headers: { Authorization: `Bearer ${await issuer.mint({ tenant: 'acme' })}` } },
          }),
        );
        expect((await client.callTool({ name: 'whoami', arguments: {} })).structuredContent).toEqual({
          tenant: 'acme',
        });
        await client.close();
      } finally {
        await scope.close();
        http.closeAllConnections();
        http.close();
      }
    }
  });
});
