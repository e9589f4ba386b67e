/**
 * Issue 11 "Every refusal of an authenticated request is audited", issue 16 items 6 and 7 (one
 * shape for refusals, adapter causes in the server log), issue 15 §6 (auth refusals' JSON-RPC code).
 */
import { type AuditEvent, TenantScopeError, UnauthenticatedAuditBound } from '@tenantscope/core';
import { describe, expect, it } from 'vitest';
import { type Harness, INIT, rawPost, startHarness, text } from './harness.ts';

async function allEvents(h: Harness): Promise<AuditEvent[]> {
  return [...(await h.stream('acme')), ...(await h.stream('globex')), ...(await h.stream(null))];
}

async function raw(
  url: string,
  init: { method?: string; token?: string | null; session?: string; body?: string },
): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.session) headers['mcp-session-id'] = init.session;
  const res = await fetch(url, { method: init.method ?? 'POST', headers, body: init.body });
  const t = await res.text();
  let json: unknown = t;
  try {
    json = JSON.parse(t.startsWith('event:') ? (t.split('data: ')[1] ?? '') : t);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

async function openSession(h: Harness, tenant: string): Promise<{ acme: string; sid: string }> {
  const token = await h.token(tenant);
  return { acme: token, sid: (await rawPost(h.url, token, INIT)).sessionId as string };
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('every request in a mixed corpus leaves exactly one audit event', () => {
  it('good calls and every kind of refusal: events == requests, each in the right stream with its reason', async () => {
    const h = await startHarness({ scope: { limits: { maxBodyBytes: 4096 } } });
    try {
      const acme = await h.token('acme');
      const globex = await h.token('globex');
      const sid = (await rawPost(h.url, acme, INIT)).sessionId as string;
      const globexSid = (await rawPost(h.url, globex, INIT)).sessionId as string;
      const deleted = (await rawPost(h.url, acme, INIT)).sessionId as string;
      const audList = await h.token('acme', { claims: { aud: [h.url, 'https://other.example/mcp'] } });
      await raw(h.url, { method: 'DELETE', token: acme, session: deleted });

      // [what, request, expected HTTP status, expected stream, expected reason]
      const corpus: [string, () => Promise<{ status: number; json: unknown }>, number, string | null, string | null][] =
        [
          ['good call', () => raw(h.url, { token: acme, session: sid, body: call(1, 'whoami') }), 200, 'acme', null],
          [
            'good call with args',
            () => raw(h.url, { token: acme, session: sid, body: call(2, 'echo', { text: 'hi' }) }),
            200,
            'acme',
            null,
          ],
          [
            'call on a deleted session',
            () => raw(h.url, { token: acme, session: deleted, body: call(3, 'whoami') }),
            404,
            'acme',
            'SESSION_NOT_FOUND',
          ],
          [
            'call on an unknown session',
            () => raw(h.url, { token: acme, session: 'no-such-session', body: call(4, 'whoami') }),
            404,
            'acme',
            'SESSION_NOT_FOUND',
          ],
          [
            'call with no session',
            () => raw(h.url, { token: acme, body: call(5, 'whoami') }),
            400,
            'acme',
            'SESSION_REQUIRED',
          ],
          [
            'arguments of the wrong type',
            () => raw(h.url, { token: acme, session: sid, body: call(6, 'echo', { text: 42 }) }),
            200,
            'acme',
            'INVALID_ARGUMENT',
          ],
          [
            'arguments over the schema limit',
            () => raw(h.url, { token: acme, session: sid, body: call(7, 'echo', { text: 'x'.repeat(1001) }) }),
            200,
            'acme',
            'INVALID_ARGUMENT',
          ],
          [
            'missing required argument',
            () => raw(h.url, { token: acme, session: sid, body: call(8, 'echo', {}) }),
            200,
            'acme',
            'INVALID_ARGUMENT',
          ],
          [
            'oversize body with a valid token',
            () => raw(h.url, { token: acme, session: sid, body: call(9, 'echo', { text: 'x'.repeat(8000) }) }),
            413,
            'acme',
            'REQUEST_TOO_LARGE',
          ],
          [
            'body that is not JSON',
            () => raw(h.url, { token: acme, session: sid, body: '{"jsonrpc":' }),
            400,
            'acme',
            'BAD_REQUEST',
          ],
          [
            'tenant override',
            () => raw(h.url, { token: acme, session: sid, body: call(10, 'echo', { text: 'x', tenant_id: 'globex' }) }),
            200,
            'acme',
            'TENANT_OVERRIDE',
          ],
          [
            "another tenant's tool",
            () => raw(h.url, { token: acme, session: sid, body: call(11, 'globex_only') }),
            200,
            'acme',
            'TOOL_NOT_FOUND',
          ],
          [
            'an unknown tool',
            () => raw(h.url, { token: acme, session: sid, body: call(12, 'zz_none') }),
            200,
            'acme',
            'TOOL_NOT_FOUND',
          ],
          [
            "another tenant's session",
            () => raw(h.url, { token: acme, session: globexSid, body: call(13, 'whoami') }),
            403,
            'acme',
            'SESSION_MISMATCH',
          ],
          [
            'a method the endpoint does not serve',
            () => raw(h.url, { method: 'PUT', token: acme, session: sid, body: call(14, 'whoami') }),
            405,
            'acme',
            'METHOD_NOT_ALLOWED',
          ],
          [
            'good call for globex',
            () => raw(h.url, { token: globex, session: globexSid, body: call(15, 'whoami') }),
            200,
            'globex',
            null,
          ],
          [
            'no token',
            () => raw(h.url, { token: null, session: sid, body: call(16, 'whoami') }),
            401,
            null,
            'AUTH_MISSING',
          ],
          [
            'garbage token',
            () => raw(h.url, { token: 'x.y.z', session: sid, body: call(17, 'whoami') }),
            401,
            null,
            'AUTH_MALFORMED',
          ],
          [
            // Signed, so attributable: refused (RFC 8707, one audience) and audited in acme's stream.
            'a token whose aud also names another resource',
            () => raw(h.url, { token: audList, session: sid, body: call(18, 'whoami') }),
            401,
            'acme',
            'AUTH_AUDIENCE',
          ],
        ];

      let requests = 0;
      let events = (await allEvents(h)).length;
      for (const [what, send, status, stream, reason] of corpus) {
        const before = await h.stream(stream);
        const r = await send();
        requests++;
        expect(r.status, what).toBe(status);
        const after = await h.stream(stream);
        expect(after.length, `${what}: one event in ${stream ?? '_unauthenticated'}`).toBe(before.length + 1);
        expect(after.at(-1)?.reason ?? null, what).toBe(reason);
        expect(after.at(-1)?.result_status, what).toBe(reason === null ? 'ok' : 'denied');
        const total = (await allEvents(h)).length;
        expect(total - events, `${what}: exactly one event in all streams`).toBe(1);
        events = total;
      }
      expect(requests).toBe(corpus.length);
      // Nothing about acme's refusals landed in globex's stream, and no tenant name leaked into the public one.
      expect((await h.stream('globex')).every((e) => e.tenant_id === 'globex')).toBe(true);
      expect((await h.stream(null)).every((e) => e.tenant_id === null && e.subject === null)).toBe(true);
    } finally {
      await h.close();
    }
  });
});

describe('stateless mode', () => {
  it('refusals of authenticated requests are audited there too (405, schema, no tool)', async () => {
    const h = await startHarness({ scope: { mode: 'stateless' } });
    try {
      const acme = await h.token('acme');
      const before = (await h.stream('acme')).length;
      expect((await raw(h.url, { method: 'GET', token: acme })).status).toBe(405);
      expect((await raw(h.url, { method: 'DELETE', token: acme })).status).toBe(405);
      const bad = await raw(h.url, { token: acme, body: call(1, 'echo', { text: 42 }) });
      expect(bad.json).toMatchObject({ id: 1, result: { isError: true, _meta: { code: 'INVALID_ARGUMENT' } } });
      const events = (await h.stream('acme')).slice(before);
      expect(events.map((e) => e.reason)).toEqual(['METHOD_NOT_ALLOWED', 'METHOD_NOT_ALLOWED', 'INVALID_ARGUMENT']);
    } finally {
      await h.close();
    }
  });
});

describe('a batch with a refused call', () => {
  it('answers every request in it and audits every call once (none is dropped)', async () => {
    const h = await startHarness();
    try {
      const { acme, sid } = await openSession(h, 'acme');
      const before = (await h.stream('acme')).length;
      const batch = [
        JSON.parse(call(1, 'echo', { text: 'x', tenant_id: 'globex' })),
        JSON.parse(call(2, 'whoami')),
        JSON.parse(call(3, 'globex_only')),
        { jsonrpc: '2.0', id: 4, method: 'tools/list', params: {} },
        { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } },
      ];
      const r = await raw(h.url, { token: acme, session: sid, body: JSON.stringify(batch) });
      expect(r.status).toBe(200);
      const answers = r.json as {
        id: number;
        result?: { _meta?: { code?: string } };
        error?: { data?: { code?: string } };
      }[];
      expect(answers.map((a) => a.id).sort()).toEqual([1, 2, 3, 4]);
      const code = (id: number) => {
        const a = answers.find((x) => x.id === id);
        return a?.result?._meta?.code ?? a?.error?.data?.code;
      };
      expect([code(1), code(2), code(3), code(4)]).toEqual([
        'TENANT_OVERRIDE',
        'BATCH_REFUSED',
        'BATCH_REFUSED', // a hidden tool looks like any other call in the batch
        'BATCH_REFUSED',
      ]);
      const events = (await h.stream('acme')).slice(before);
      expect(events.map((e) => [e.request_id, e.reason]).sort()).toEqual([
        ['1', 'TENANT_OVERRIDE'],
        ['2', 'BATCH_REFUSED'],
        ['3', 'TOOL_NOT_FOUND'],
      ]);
    } finally {
      await h.close();
    }
  });
});

describe('one shape for refusals', () => {
  it('refusals of a call are isError results with _meta.code; the hidden tool stays the SDK unknown-tool answer', async () => {
    const h = await startHarness();
    try {
      const { acme, sid } = await openSession(h, 'acme');
      const answer = async (id: number, name: string, args: Record<string, unknown> = {}) =>
        (await raw(h.url, { token: acme, session: sid, body: call(id, name, args) })).json;
      expect(await answer(1, 'echo', { text: 'x', tenant_id: 'globex' })).toEqual({
        jsonrpc: '2.0',
        id: 1,
        result: {
          content: [
            { type: 'text', text: 'TENANT_OVERRIDE: tenant-identifying fields are not accepted in tool arguments' },
          ],
          isError: true,
          _meta: { code: 'TENANT_OVERRIDE' },
        },
      });
      expect(await answer(2, 'echo', { text: 42 })).toMatchObject({
        id: 2,
        result: { isError: true, _meta: { code: 'INVALID_ARGUMENT' } },
      });
      const hidden = JSON.stringify(await answer(3, 'globex_only'));
      const unknown = JSON.stringify(await answer(3, 'zz_nonexistent_tool'));
      expect(hidden.replace('globex_only', 'X')).toBe(unknown.replace('zz_nonexistent_tool', 'X'));
    } finally {
      await h.close();
    }
  });

  it('protocol refusals are JSON-RPC errors whose auth codes are not the SDK RequestTimeout (-32001)', async () => {
    const h = await startHarness();
    try {
      const r401 = await raw(h.url, { token: null, body: JSON.stringify(INIT) });
      expect(r401.status).toBe(401);
      expect(r401.json).toMatchObject({ error: { code: -32010, data: { code: 'AUTH_MISSING' } } });
      const globexSid = (await rawPost(h.url, await h.token('globex'), INIT)).sessionId as string;
      const r403 = await raw(h.url, { token: await h.token('acme'), session: globexSid, body: call(1, 'whoami') });
      expect(r403.status).toBe(403);
      expect(r403.json).toMatchObject({ error: { code: -32011, data: { code: 'SESSION_MISMATCH' } } });
    } finally {
      await h.close();
    }
  });
});

describe('the unauthenticated stream is rate-bounded', () => {
  it('past the cap per window, refusals are counted and summarised in one event', async () => {
    // A long window, so a slow machine cannot roll it over mid-flood; close() writes the pending summary.
    const h = await startHarness({ scope: { unauthenticatedAudit: { maxPerWindow: 5, windowMs: 600_000 } } });
    try {
      const statuses = await Promise.all(
        Array.from({ length: 60 }, (_, i) => raw(h.url, { token: `bad.${i}.token`, body: JSON.stringify(INIT) })),
      );
      expect(statuses.every((r) => r.status === 401)).toBe(true);
      expect(await h.stream(null)).toHaveLength(5);
      await h.scope.close();
      const after = await h.stream(null);
      expect(after).toHaveLength(6);
      expect(after[5]).toMatchObject({
        event_type: 'auth_failure_summary',
        reason: 'AUDIT_RATE_BOUNDED',
        tenant_id: null,
        details: { suppressed: 55, reason_AUTH_MALFORMED: 55 },
      });
      // 5 written + 55 summarised: the trail still accounts for all 60 requests.
      expect(5 + Number(after[5]?.details?.suppressed)).toBe(60);
    } finally {
      await h.close();
    }
  });

  it('UnauthenticatedAuditBound: cap per window, one summary, a fresh window writes again', async () => {
    let now = 0;
    const written: AuditEvent[] = [];
    const bound = new UnauthenticatedAuditBound(
      async (e) => {
        written.push(e);
      },
      { maxPerWindow: 3, windowMs: 1000 },
      () => now,
    );
    const ev = (reason: string): AuditEvent => ({
      timestamp: new Date(now).toISOString(),
      tenant_id: null,
      session_id: null,
      subject: null,
      event_type: 'auth_failure',
      tool_name: null,
      args_hash: null,
      result_status: 'denied',
      reason,
      latency_ms: 0,
      ip_address: null,
    });
    for (let i = 0; i < 1000; i++) await bound.record(ev(i % 2 ? 'AUTH_EXPIRED' : 'AUTH_SIGNATURE'));
    expect(written).toHaveLength(3);
    now = 1500;
    await bound.record(ev('AUTH_MISSING'));
    expect(written).toHaveLength(5);
    expect(written[3]).toMatchObject({ event_type: 'auth_failure_summary', details: { suppressed: 997 } });
    expect(written[4]?.reason).toBe('AUTH_MISSING');
    await bound.flush(); // nothing left out in this window: no summary
    expect(written).toHaveLength(5);
  });
});

describe('adapter failures are diagnosable on the server, not by the client', () => {
  it('logs the cause with tenant, tool and code but no row data; the client sees only the code', async () => {
    const lines: Record<string, unknown>[] = [];
    const h = await startHarness({
      tenants: { acme: { tools: ['failing'] } },
      scope: { log: (r) => lines.push(r) },
    });
    h.scope.tool({
      name: 'failing',
      description: 'fails like a driver',
      handler: () => {
        const driver = Object.assign(new Error('permission denied for sequence tickets_id_seq'), {
          code: '42501',
          detail: 'Failing row contains (7, secret-row-value@example.com)',
          where: 'SQL statement "insert ..."',
        });
        throw new TenantScopeError('PG_QUERY_FAILED', 'query failed (SQLSTATE 42501)', { cause: driver });
      },
    });
    try {
      const c = await h.connect(await h.token('acme'));
      const r = await c.callTool({ name: 'failing', arguments: {} });
      expect(r).toMatchObject({ isError: true, _meta: { code: 'PG_QUERY_FAILED' } });
      expect(text(r)).toBe('PG_QUERY_FAILED: query failed (SQLSTATE 42501)');
      const logged = lines.filter((l) => l.msg === 'tool call failed');
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        level: 'error',
        tenant_id: 'acme',
        tool_name: 'failing',
        code: 'PG_QUERY_FAILED',
        causes: [{ name: 'Error', code: '42501', message: 'permission denied for sequence tickets_id_seq' }],
      });
      expect(JSON.stringify(lines)).not.toContain('secret-row-value');
      expect(JSON.stringify(lines)).not.toContain('SQL statement');
      await c.close();
    } finally {
      await h.close();
    }
  });
});
