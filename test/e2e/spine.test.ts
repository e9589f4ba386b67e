/**
 * The path of one tool call, end to end over real HTTP with the official MCP SDK client:
 * the isolation list, session hijack, context leak and the fail-closed rules.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, INIT, rawPost, startHarness, text } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('authentication at the connection layer', () => {
  it('answers 401 with WWW-Authenticate naming the protected resource metadata, which is served', async () => {
    const r = await rawPost(h.url, null, INIT);
    expect(r.status).toBe(401);
    const www = r.headers.get('www-authenticate') ?? '';
    expect(www).toMatch(/^Bearer /);
    expect(www).toContain(`resource_metadata="${h.origin}/.well-known/oauth-protected-resource/mcp"`);
    const meta = await (await fetch(`${h.origin}/.well-known/oauth-protected-resource/mcp`)).json();
    expect(meta).toMatchObject({ resource: h.url, authorization_servers: [h.issuer.issuer] });
  });

  it('replayed expired token: 401 invalid_token, with its code', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await h.token('acme', { iat: now - 1000, ttlSeconds: 600 });
    const r = await rawPost(h.url, expired, INIT);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(r.headers.get('www-authenticate')).toContain('AUTH_EXPIRED');
    // And mid-session: a session opened with a good token refuses a later expired one.
    const good = await rawPost(h.url, await h.token('acme'), INIT);
    expect(good.status).toBe(200);
    const later = await rawPost(h.url, expired, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, good.sessionId ?? '');
    expect(later.status).toBe(401);
  });

  it('forged JWT with extra allowed_tools: 401', async () => {
    const real = await h.token('acme', { tools: ['whoami'] });
    const [head, payload, sig] = real.split('.') as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
    claims.allowed_tools = ['*'];
    const forged = `${head}.${base64url.encode(JSON.stringify(claims))}.${sig}`;
    const r = await rawPost(h.url, forged, INIT);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('AUTH_SIGNATURE');
  });

  it('audits authentication failures; attributes them to a tenant only after the signature verified', async () => {
    const before = (await h.stream(null)).length;
    await rawPost(h.url, 'garbage.token.here', INIT);
    const unauth = await h.stream(null);
    expect(unauth.length).toBe(before + 1);
    expect(unauth.at(-1)).toMatchObject({ event_type: 'auth_failure', result_status: 'denied', tenant_id: null });
    const now = Math.floor(Date.now() / 1000);
    await rawPost(h.url, await h.token('initech', { iat: now - 2000, ttlSeconds: 60 }), INIT);
    const initech = await h.stream('initech');
    expect(initech.at(-1)).toMatchObject({
      event_type: 'auth_failure',
      reason: 'AUTH_EXPIRED',
      tenant_id: 'initech',
      subject: 'agent-initech',
    });
    // A forged token names a tenant and subject too, but its signature did not verify: unattributed.
    expect(unauth.at(-1)?.subject).toBeNull();
  });

  it('403 insufficient_scope when the token grants no tool; 403 for a tenant not in the directory', async () => {
    const none = await rawPost(h.url, await h.token('acme', { tools: ['nothing_here'] }), INIT);
    expect(none.status).toBe(403);
    expect(none.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    const stranger = await rawPost(h.url, await h.token('umbrella'), INIT);
    expect(stranger.status).toBe(403);
    expect(JSON.stringify(stranger.json)).toContain('TENANT_UNKNOWN');
  });
});

describe('the isolation list', () => {
  it('tools/list returns only the tenant’s effective tools (policy ∩ token)', async () => {
    const a = await h.connect(await h.token('acme'));
    const g = await h.connect(await h.token('globex'));
    const narrow = await h.connect(await h.token('acme', { tools: ['whoami', 'ech*'] }));
    expect((await a.listTools()).tools.map((t) => t.name).sort()).toEqual([
      'acme_only',
      'echo',
      'slow_whoami',
      'whoami',
    ]);
    expect((await g.listTools()).tools.map((t) => t.name).sort()).toEqual([
      'echo',
      'globex_only',
      'slow_whoami',
      'whoami',
    ]);
    expect((await narrow.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'whoami']);
    await Promise.all([a.close(), g.close(), narrow.close()]);
  });

  it('tenant A calling a tool only B has is refused exactly as an unknown tool', async () => {
    const a = await h.connect(await h.token('acme'));
    const foreign = await a.callTool({ name: 'globex_only', arguments: {} });
    const unknown = await a.callTool({ name: 'zz_not_a_tool', arguments: {} });
    expect(foreign.isError).toBe(true);
    expect(JSON.stringify(foreign).replaceAll('globex_only', 'NAME')).toBe(
      JSON.stringify(unknown).replaceAll('zz_not_a_tool', 'NAME'),
    );
    // The denial is audited in acme's stream.
    const events = await h.stream('acme');
    expect(events.some((e) => e.tool_name === 'globex_only' && e.reason === 'TOOL_NOT_FOUND')).toBe(true);
    await a.close();
  });

  it('a tool granted at initialize but not by the current request’s token is refused like an unknown tool', async () => {
    let token = await h.token('acme');
    const a = await h.connect(() => token);
    expect((await a.callTool({ name: 'acme_only', arguments: {} })).isError).toBeFalsy();
    token = await h.token('acme', { tools: ['whoami'] });
    const refused = await a.callTool({ name: 'acme_only', arguments: {} });
    const unknown = await a.callTool({ name: 'zz_none', arguments: {} });
    expect(text(refused).replace('acme_only', 'X')).toBe(text(unknown).replace('zz_none', 'X'));
    await a.close();
  });

  it('a tenant_id override in the arguments is refused and audited as an override attempt', async () => {
    const a = await h.connect(await h.token('acme'));
    for (const args of [
      { text: 'hi', tenant_id: 'globex' },
      { text: 'hi', nested: { deeper: [{ tenantId: 'globex' }] } },
      { text: 'hi', nested: { TENANT_ID: 'globex' } },
    ]) {
      const before = (await h.stream('acme')).filter((e) => e.event_type === 'tenant_override').length;
      // A refusal of a call is an isError result with its code (one rule for every refusal of a call).
      const r = await a.callTool({ name: 'echo', arguments: args });
      expect(r).toMatchObject({ isError: true, _meta: { code: 'TENANT_OVERRIDE' } });
      expect(text(r)).not.toContain('globex');
      const overrides = (await h.stream('acme')).filter((e) => e.event_type === 'tenant_override');
      expect(overrides.length).toBe(before + 1);
      expect(overrides.at(-1)).toMatchObject({ result_status: 'denied', reason: 'TENANT_OVERRIDE', tool_name: 'echo' });
      // Nothing about the attempt reached globex's stream.
      expect((await h.stream('globex')).some((e) => e.event_type === 'tenant_override')).toBe(false);
    }
    await a.close();
  });

  it('100 tool calls across 3 tenants: every event in its own stream, exact counts', async () => {
    const tenants = ['acme', 'globex', 'initech'] as const;
    const before: Record<string, number> = {};
    const clients: Record<string, Client> = {};
    for (const t of tenants) {
      before[t] = (await h.stream(t)).filter((e) => e.event_type === 'tool_call').length;
      clients[t] = await h.connect(await h.token(t));
    }
    const plan = Array.from({ length: 100 }, (_, i) => tenants[(i * 7) % 3] as (typeof tenants)[number]);
    const results = await Promise.all(
      plan.map((t, i) => (clients[t] as Client).callTool({ name: 'echo', arguments: { text: `call-${i}` } })),
    );
    for (const [i, r] of results.entries()) {
      expect((r.structuredContent as { tenant: string }).tenant).toBe(plan[i]);
    }
    for (const t of tenants) {
      const events = (await h.stream(t)).filter((e) => e.event_type === 'tool_call');
      const expected = plan.filter((p) => p === t).length;
      const prior = before[t] ?? 0;
      expect(events.length - prior).toBe(expected);
      expect(events.every((e) => e.tenant_id === t)).toBe(true);
      const newOnes = events.slice(prior);
      expect(newOnes.every((e) => e.result_status === 'ok' && e.args_hash?.startsWith('sha256:'))).toBe(true);
    }
    await Promise.all(Object.values(clients).map((c: Client) => c.close()));
  });
});

describe('sessions', () => {
  it("A's session id with B's valid token is refused, and A's session keeps working", async () => {
    const aToken = await h.token('acme');
    const a = await rawPost(h.url, aToken, INIT);
    const sid = a.sessionId ?? '';
    expect(sid.length).toBeGreaterThanOrEqual(43); // 256 bits, base64url
    await rawPost(h.url, aToken, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid);
    const hijack = await rawPost(
      h.url,
      await h.token('globex'),
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      sid,
    );
    expect(hijack.status).toBe(403);
    expect(JSON.stringify(hijack.json)).toContain('SESSION_MISMATCH');
    // Same tenant, other subject: also refused.
    const other = await rawPost(
      h.url,
      await h.token('acme', { subject: 'someone-else' }),
      { jsonrpc: '2.0', id: 6, method: 'tools/list' },
      sid,
    );
    expect(other.status).toBe(403);
    const ok = await rawPost(
      h.url,
      aToken,
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      sid,
    );
    expect(ok.status).toBe(200);
    expect(JSON.stringify(ok.json)).toContain('"tenant\\":\\"acme\\"');
    expect(
      (await h.stream('globex')).some((e) => e.event_type === 'session_denied' && e.reason === 'SESSION_MISMATCH'),
    ).toBe(true);
  });

  it('an unknown session id gets 404, and a non-initialize request without a session 400', async () => {
    const t = await h.token('acme');
    expect((await rawPost(h.url, t, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, 'no-such-session')).status).toBe(
      404,
    );
    expect((await rawPost(h.url, t, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).status).toBe(400);
  });

  it('halting a tenant refuses its next request immediately', async () => {
    const t = await h.token('initech');
    const c = await h.connect(t);
    expect((await c.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();
    await h.revocations.haltTenant('initech', 'drill');
    await expect(c.callTool({ name: 'whoami', arguments: {} })).rejects.toThrow();
    await h.revocations.resumeTenant('initech');
    expect((await c.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();
    await c.close();
  });
});

describe('context', () => {
  it('1,000 interleaved calls across 20 tenants with random awaits: every handler sees its own tenant', async () => {
    const tenants = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
    const big = await startHarness({
      tenants: Object.fromEntries(
        tenants.map((t) => [
          t,
          { tools: ['slow_whoami'], limits: { callsPerMinute: 10_000, maxConcurrentCalls: 100 } },
        ]),
      ),
    });
    try {
      const clients = await Promise.all(tenants.map(async (t) => big.connect(await big.token(t))));
      let seed = 42;
      const rand = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const calls = Array.from({ length: 1000 }, (_, i) => {
        const k = Math.floor(rand() * 20);
        const waits = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => Math.floor(rand() * 8));
        return { i, tenant: tenants[k] as string, client: clients[k], waits };
      });
      const wrong: string[] = [];
      for (let start = 0; start < calls.length; start += 100) {
        await Promise.all(
          calls.slice(start, start + 100).map(async (c) => {
            const r = await c.client?.callTool({ name: 'slow_whoami', arguments: { waits: c.waits } });
            const s = r?.structuredContent as { ctx: string; als: string; seen: string[] };
            if (s.ctx !== c.tenant || s.als !== c.tenant || s.seen.some((x) => x !== c.tenant)) wrong.push(`${c.i}`);
          }),
        );
      }
      expect(wrong).toEqual([]);
      await Promise.all(clients.map((c) => c.close()));
    } finally {
      await big.close();
    }
  });
});
