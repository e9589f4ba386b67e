import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaticTenantDirectory } from './directory.ts';
import { tenantScope } from './server.ts';
import { TEST_AUDIENCE, TestAuditSink, type TestTenants, testTenants } from './test-helpers.ts';

/** The server over loopback HTTP, its audit sink able to fail (a sink that is down). */
describe('TenantScope: one audit writer, one error', () => {
  let tenants: TestTenants;
  const sink = new TestAuditSink();
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    tenants = await testTenants();
    const scope = tenantScope({
      verifier: tenants.verifier,
      directory: new StaticTenantDirectory({ acme: { tools: ['whoami'] } }),
      audit: sink,
      log: () => undefined,
    });
    scope.tool({ name: 'whoami', description: 'who', handler: (_a, ctx) => ({ tenant: ctx.tenant.id }) });
    const http = createServer((req, res) => void scope.handle(req, res));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(http.address() as { port: number }).port}${new URL(TEST_AUDIENCE).pathname}`;
    close = async () => {
      await scope.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    };
  });
  afterAll(() => close());

  async function connect(token: string): Promise<Client> {
    const client = new Client({ name: 't', version: '0' });
    const headers = { Authorization: `Bearer ${token}` };
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
    return client;
  }

  it('a call and a refused request whose events cannot be written both fail closed with the same error', async () => {
    const token = await tenants.token('acme');
    const client = await connect(token);
    try {
      expect((await client.callTool({ name: 'whoami', arguments: {} })).structuredContent).toEqual({ tenant: 'acme' });
      sink.failing = true;
      const call = await client.callTool({ name: 'whoami', arguments: {} });
      expect(call.isError).toBe(true);
      expect(call.structuredContent).toBeUndefined();
      const callText = (call.content as { text: string }[])[0]?.text;

      const refused = await fetch(url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          'mcp-session-id': 'no-such-session',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      const body = (await refused.json()) as { error: { message: string; data: { code: string } } };
      expect([refused.status, body.error.data.code]).toEqual([503, 'AUDIT_WRITE_FAILED']);
      // One writer: the same code and message whichever path failed to write.
      expect(callText).toBe('AUDIT_WRITE_FAILED: the request could not be audited');
      expect(body.error.message).toBe(callText);

      // An auth failure is refused whether or not its audit lands.
      const anonymous = await fetch(url, { method: 'POST', body: '{}', headers: { Authorization: 'Bearer x.y.z' } });
      expect(anonymous.status).toBe(401);
    } finally {
      sink.failing = false;
      await client.close();
    }
  });
});
