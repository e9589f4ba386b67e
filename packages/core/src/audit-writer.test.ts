import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from './audit.ts';
import { type Caller, refusalRecord, sessionDeniedRecord } from './audit-writer.ts';
import { TestAuditSink, testTenants, testWriter } from './test-helpers.ts';

let caller: Caller;
beforeAll(async () => {
  caller = { tenant: await (await testTenants()).tenant('acme'), ip: '127.0.0.1', started: performance.now() };
});

describe('AuditWriter', () => {
  it('stamps the time and rounds the latency', async () => {
    const sink = new TestAuditSink();
    await testWriter(sink).writer.write({ ...sessionDeniedRecord(caller, 'SESSION_LIMIT'), latency_ms: 1.23456789 });
    expect(sink.events[0]).toMatchObject({ tenant_id: 'acme', event_type: 'session_denied', latency_ms: 1.235 });
    expect(Date.parse(sink.events[0]?.timestamp ?? '')).toBeGreaterThan(Date.now() - 5000);
  });

  it('fails closed with one error (AUDIT_WRITE_FAILED, 503) for every kind of event, cause logged not sent', async () => {
    const sink = new TestAuditSink();
    sink.failing = true;
    const { writer, logged } = testWriter(sink);
    for (const record of [refusalRecord(caller, 'SESSION_NOT_FOUND'), sessionDeniedRecord(caller, 'SESSION_LIMIT')]) {
      const err = await writer.write(record).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: 'AUDIT_WRITE_FAILED',
        status: 503,
        message: 'the request could not be audited',
      });
      expect(JSON.stringify(err)).not.toContain('disk full');
    }
    expect(logged).toEqual([
      { level: 'error', msg: 'audit write failed', error: 'disk full', tenant_id: 'acme' },
      { level: 'error', msg: 'audit write failed', error: 'disk full', tenant_id: 'acme' },
    ]);
  });

  it("with onAuditFailure 'allow', logs and carries on", async () => {
    const sink = new TestAuditSink();
    sink.failing = true;
    const { writer, logged } = testWriter(sink, 'allow');
    await expect(writer.write(refusalRecord(caller, 'BAD_REQUEST'))).resolves.toBeUndefined();
    expect(logged).toHaveLength(1);
  });

  it('writes through `via` instead of the sink when given one', async () => {
    const sink = new TestAuditSink();
    const via: AuditEvent[] = [];
    await testWriter(sink).writer.write(refusalRecord(caller, 'BAD_REQUEST'), async (e) => {
      via.push(e);
    });
    expect([sink.events.length, via.length]).toEqual([0, 1]);
  });
});

describe('refusal records', () => {
  it('record a refused tools/call as a denied tool_call with its hash, never its arguments', () => {
    const body = { id: 5, method: 'tools/call', params: { name: 'search', arguments: { q: 'globex-secret' } } };
    const r = refusalRecord(caller, 'SESSION_NOT_FOUND', body);
    expect(r).toMatchObject({
      tenant_id: 'acme',
      session_id: null,
      event_type: 'tool_call',
      tool_name: 'search',
      result_status: 'denied',
      reason: 'SESSION_NOT_FOUND',
      request_id: '5',
    });
    expect(r.args_hash).toMatch(/^sha256:/);
    expect(JSON.stringify(r)).not.toContain('globex-secret');
    expect(refusalRecord(caller, 'METHOD_NOT_ALLOWED')).toMatchObject({
      event_type: 'request_denied',
      tool_name: null,
    });
  });

  it('bound a hostile tool name and survive arguments that cannot be hashed', () => {
    const body = { method: 'tools/call', params: { name: 'x'.repeat(1000), arguments: { n: 10n } } };
    const r = refusalRecord(caller, 'BAD_REQUEST', body);
    expect(r.tool_name).toHaveLength(128);
    expect(r.args_hash).toBeNull();
  });
});
