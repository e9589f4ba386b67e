/**
 * Stateless mode (`mode: 'stateless'`): no session, every request verified and scoped on its own,
 * servers reused by tool set. Over real HTTP with the official SDK client; and draining.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANTS, type Harness, INIT, rawPost, startHarness, text } from './harness.ts';

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('stateless mode', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ scope: { mode: 'stateless' } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('the SDK client works with no session: no mcp-session-id, tools filtered, calls scoped', async () => {
    const init = await rawPost(h.url, await h.token('acme'), INIT);
    expect(init.status).toBe(200);
    expect(init.sessionId).toBeNull();
    const a = await h.connect(await h.token('acme'));
    const g = await h.connect(await h.token('globex'));
    const names = async (c: typeof a) => (await c.listTools()).tools.map((t) => t.name).sort();
    expect(await names(a)).toEqual([...(DEFAULT_TENANTS.acme?.tools ?? [])].sort());
    expect(await names(g)).toEqual([...(DEFAULT_TENANTS.globex?.tools ?? [])].sort());
    expect((await a.callTool({ name: 'whoami', arguments: {} })).structuredContent).toEqual({
      tenant: 'acme',
      subject: 'agent-acme',
    });
    await Promise.all([a.close(), g.close()]);
  });

  it('a tools/call with no initialize is answered (the old binding answered 400 "no session")', async () => {
    const r = await rawPost(h.url, await h.token('initech'), call(7, 'whoami'));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: 7, result: { structuredContent: { tenant: 'initech' } } });
  });

  it('every request is authenticated: 401 with resource_metadata, revoked and halted refused at once', async () => {
    const none = await rawPost(h.url, null, call(1, 'whoami'));
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('resource_metadata=');
    const t = await h.token('acme');
    expect((await rawPost(h.url, t, call(2, 'whoami'))).status).toBe(200);
    const { jti, exp } = decodeJwt(t);
    await h.revocations.revokeToken(jti as string, new Date((exp as number) * 1000));
    const revoked = await rawPost(h.url, t, call(3, 'whoami'));
    expect(revoked.status).toBe(401);
    expect(JSON.stringify(revoked.json)).toContain('AUTH_REVOKED');
    const g = await h.token('globex');
    await h.revocations.haltTenant('globex', 'drill');
    try {
      expect((await rawPost(h.url, g, call(4, 'whoami'))).status).toBe(403);
    } finally {
      await h.revocations.resumeTenant('globex');
    }
    expect((await rawPost(h.url, g, call(5, 'whoami'))).status).toBe(200);
  });

  it("another tenant's tool is answered exactly as an unknown tool, and audited", async () => {
    const t = await h.token('acme');
    const foreign = await rawPost(h.url, t, call(9, 'globex_only'));
    const unknown = await rawPost(h.url, t, call(9, 'zz_none'));
    expect(JSON.stringify(foreign.json).replaceAll('globex_only', 'X')).toBe(
      JSON.stringify(unknown.json).replaceAll('zz_none', 'X'),
    );
    const ev = (await h.stream('acme')).filter((e) => e.tool_name === 'globex_only');
    expect(ev.at(-1)).toMatchObject({ result_status: 'denied', reason: 'TOOL_NOT_FOUND' });
  });

  it('a tenant_id override is refused and audited; GET and DELETE are 405', async () => {
    const t = await h.token('acme');
    const r = await rawPost(h.url, t, call(3, 'echo', { text: 'x', tenant_id: 'globex' }));
    expect(JSON.stringify(r.json)).toContain('TENANT_OVERRIDE');
    expect((await h.stream('acme')).filter((e) => e.event_type === 'tenant_override').at(-1)).toMatchObject({
      result_status: 'denied',
    });
    expect((await h.stream('globex')).some((e) => e.event_type === 'tenant_override')).toBe(false);
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(h.url, { method, headers: { authorization: `Bearer ${t}` } });
      expect(res.status).toBe(405);
    }
  });

  it('600 concurrent calls of 3 tenants on reused servers: each sees its own tenant; exact audit counts', async () => {
    const tenants = ['acme', 'globex', 'initech'] as const;
    // acme's token is narrowed to initech's exact tool set, so the two share pooled servers.
    const tokens = {
      acme: await h.token('acme', { tools: ['whoami', 'echo', 'slow_whoami'] }),
      globex: await h.token('globex'),
      initech: await h.token('initech'),
    };
    const before = Object.fromEntries(
      await Promise.all(
        tenants.map(async (t) => [t, (await h.stream(t)).filter((e) => e.tool_name === 'slow_whoami').length]),
      ),
    );
    const clients = await Promise.all(tenants.map((t) => h.connect(tokens[t])));
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 600; i++) {
      const k = i % 3;
      const tenant = tenants[k] as string;
      const waits = [i % 7, (i * 3) % 5];
      jobs.push(
        (clients[k] as (typeof clients)[number]).callTool({ name: 'slow_whoami', arguments: { waits } }).then((r) => {
          expect(r.structuredContent).toEqual({ ctx: tenant, als: tenant, seen: [tenant, tenant] });
        }),
      );
    }
    await Promise.all(jobs);
    for (const t of tenants) {
      const mine = (await h.stream(t)).filter((e) => e.tool_name === 'slow_whoami');
      expect(mine.length - (before[t] as number)).toBe(200);
      expect(mine.every((e) => e.tenant_id === t && e.result_status === 'ok')).toBe(true);
    }
    await Promise.all(clients.map((c) => c.close()));
  });
});

describe('drain', () => {
  it.each(['session', 'stateless'] as const)(
    '%s: an in-flight call finishes; a request after drain() gets 503 with Retry-After',
    async (mode) => {
      const h = await startHarness({ scope: { mode } });
      try {
        const c = await h.connect(await h.token('acme'));
        const slow = c.callTool({ name: 'slow_whoami', arguments: { waits: [20, 20, 20, 20, 20, 20, 20, 20] } });
        for (let i = 0; i < 200 && h.scope.inFlight === 0; i++) await new Promise((r) => setTimeout(r, 5));
        expect(h.scope.inFlight).toBeGreaterThan(0);
        const drained = h.scope.drain(5000);
        const late = await rawPost(h.url, await h.token('acme'), call(1, 'whoami'));
        expect(late.status).toBe(503);
        expect(late.headers.get('retry-after')).toBe('1');
        expect(text(await slow)).toContain('acme');
        expect(await drained).toBe(true);
        const ok = (await h.stream('acme')).filter((e) => e.tool_name === 'slow_whoami');
        expect(ok).toHaveLength(1);
        await c.close().catch(() => undefined);
      } finally {
        await h.close();
      }
    },
  );
});
