import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Caller } from './audit-writer.ts';
import { findOverrideFields, normaliseField, OverrideGuard, stripOverrideFields } from './override-guard.ts';
import { TestAuditSink, testTenants, testWriter } from './test-helpers.ts';

const FIELDS = new Set(['tenant_id', 'tenantId'].map(normaliseField));
const TOOLS = { search: { name: 'search', input: { q: z.string().max(10) } } };

let caller: Caller;
beforeAll(async () => {
  const tenants = await testTenants();
  caller = { tenant: await tenants.tenant('acme'), ip: '127.0.0.1', started: performance.now() };
});

function guard(sink: TestAuditSink, mode: 'refuse' | 'strip' = 'refuse', onFailure: 'deny' | 'allow' = 'deny') {
  const { writer } = testWriter(sink, onFailure);
  return new OverrideGuard({ mode, tool: (n) => TOOLS[n as keyof typeof TOOLS], audit: writer });
}
const session = { id: 'sess-1', registered: new Set(['search']) };
const call = (args: unknown, id: number | string = 1, name = 'search') => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('findOverrideFields / stripOverrideFields', () => {
  it('finds tenant fields at any depth, in arrays, whatever their case, `_` or `-`', () => {
    const args = { q: 'x', Tenant_ID: 'a', nested: { list: [{ 'tenant-id': 'b' }, { TENANTID: 'c' }] }, tenant: 'd' };
    expect(findOverrideFields(args, FIELDS)).toEqual([
      '$.Tenant_ID',
      '$.nested.list[0].tenant-id',
      '$.nested.list[1].TENANTID',
    ]);
    expect(findOverrideFields({ q: 'tenant_id' }, FIELDS)).toEqual([]); // a value is not a field
    expect(findOverrideFields('tenant_id', FIELDS)).toEqual([]);
  });

  it('stops at depth 64 (a hostile nesting costs a bounded walk)', () => {
    let deep: Record<string, unknown> = { tenant_id: 'x' };
    for (let i = 0; i < 100; i++) deep = { a: deep };
    expect(findOverrideFields(deep, FIELDS)).toEqual([]);
    let shallow: Record<string, unknown> = { tenant_id: 'x' };
    for (let i = 0; i < 10; i++) shallow = { a: shallow };
    expect(findOverrideFields(shallow, FIELDS)).toHaveLength(1);
  });

  it('strips them everywhere and leaves the input untouched', () => {
    const args = { q: 'x', tenantId: 'a', rows: [{ tenant_id: 'b', n: 1 }] };
    expect(stripOverrideFields(args, FIELDS)).toEqual({ q: 'x', rows: [{ n: 1 }] });
    expect(args.tenantId).toBe('a');
  });
});

describe('OverrideGuard', () => {
  it('passes a clean call with no event', async () => {
    const sink = new TestAuditSink();
    expect(await guard(sink).check(call({ q: 'ok' }), session, caller)).toBeUndefined();
    expect(sink.events).toEqual([]);
  });

  it('refuses a tenant override (isError, _meta.code) and audits it in the caller stream without the value', async () => {
    const sink = new TestAuditSink();
    const answer = await guard(sink).check(call({ q: 'ok', tenant_id: 'globex' }, 7), session, caller);
    expect(answer).toMatchObject({
      id: 7,
      result: { isError: true, _meta: { code: 'TENANT_OVERRIDE' } },
    });
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({
      tenant_id: 'acme',
      session_id: 'sess-1',
      event_type: 'tenant_override',
      tool_name: 'search',
      result_status: 'denied',
      reason: 'TENANT_OVERRIDE',
      request_id: '7',
      ip_address: '127.0.0.1',
    });
    expect(sink.events[0]?.args_hash).toMatch(/^sha256:/);
    expect(JSON.stringify(sink.events)).not.toContain('globex');
  });

  it('strip mode removes the fields in place, audits, and passes the call on', async () => {
    const sink = new TestAuditSink();
    const body = call({ q: 'ok', tenantId: 'globex' });
    expect(await guard(sink, 'strip').check(body, session, caller)).toBeUndefined();
    expect(body.params.arguments).toEqual({ q: 'ok' });
    expect(sink.events.map((e) => [e.event_type, e.result_status, e.reason])).toEqual([
      ['tenant_override', 'ok', 'TENANT_OVERRIDE_STRIPPED'],
    ]);
  });

  it('strip mode still refuses what is invalid once stripped', async () => {
    const sink = new TestAuditSink();
    const answer = await guard(sink, 'strip').check(call({ tenant_id: 'globex' }), session, caller);
    expect(answer).toMatchObject({ result: { _meta: { code: 'INVALID_ARGUMENT' } } });
    expect(sink.events.map((e) => e.reason)).toEqual(['TENANT_OVERRIDE_STRIPPED', 'INVALID_ARGUMENT']);
  });

  it('refuses arguments failing the input schema before the SDK sees them', async () => {
    const sink = new TestAuditSink();
    const answer = await guard(sink).check(call({ q: 'far too long a query' }), session, caller);
    expect(answer).toMatchObject({ result: { isError: true, _meta: { code: 'INVALID_ARGUMENT' } } });
    expect(sink.events).toMatchObject([
      { event_type: 'tool_call', result_status: 'denied', reason: 'INVALID_ARGUMENT' },
    ]);
  });

  it('records a tool outside the set but leaves its answer to the SDK (same as an unknown tool)', async () => {
    const sink = new TestAuditSink();
    expect(await guard(sink).check(call({}, 1, 'admin_wipe'), session, caller)).toBeUndefined();
    expect(sink.events).toMatchObject([{ tool_name: 'admin_wipe', result_status: 'denied', reason: 'TOOL_NOT_FOUND' }]);
  });

  it('answers a whole batch when one call is refused: nothing is dropped unanswered or unaudited', async () => {
    const sink = new TestAuditSink();
    const batch = [
      call({ q: 'ok', tenant_id: 'globex' }, 1),
      call({ q: 'fine' }, 2),
      { jsonrpc: '2.0', id: 3, method: 'ping' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
    ];
    const answer = (await guard(sink).check(batch, session, caller)) as Record<string, unknown>[];
    expect(
      answer.map((a) => [a.id, 'result' in a ? (a.result as { _meta: { code: string } })._meta.code : 'error']),
    ).toEqual([
      [1, 'TENANT_OVERRIDE'],
      [2, 'BATCH_REFUSED'],
      [3, 'error'],
    ]);
    expect(answer[2]).toMatchObject({ error: { data: { code: 'BATCH_REFUSED' } } });
    expect(sink.events.map((e) => [e.event_type, e.reason, e.request_id])).toEqual([
      ['tenant_override', 'TENANT_OVERRIDE', '1'],
      ['tool_call', 'BATCH_REFUSED', '2'],
    ]);
  });

  it('fails closed when the refusal cannot be audited (AUDIT_WRITE_FAILED), unless told to allow', async () => {
    const sink = new TestAuditSink();
    sink.failing = true;
    await expect(guard(sink).check(call({ tenant_id: 'x' }), session, caller)).rejects.toMatchObject({
      code: 'AUDIT_WRITE_FAILED',
    });
    const allowed = await guard(sink, 'refuse', 'allow').check(call({ tenant_id: 'x' }), session, caller);
    expect(allowed).toMatchObject({ result: { _meta: { code: 'TENANT_OVERRIDE' } } });
  });
});
