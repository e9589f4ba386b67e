import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { argsHash, MemoryAuditSink } from '@tenantscope/core';
import { describe, expect, it } from 'vitest';
import { sampleEvent } from '../../../test/audit/pg.ts';
import { TENANT_ATTRIBUTE, withOpenTelemetry } from './otel.ts';

describe('withOpenTelemetry', () => {
  it('records one span per tool call with MCP semantic-convention attributes, the tenant, and no argument values', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const inner = new MemoryAuditSink();
    const sink = withOpenTelemetry(inner, { tracer: provider.getTracer('test') });
    const secretArgs = { email: 'jane@example.com' };
    const t = '2026-11-26T08:00:00.000Z';
    await sink.write(sampleEvent('acme', 7, { timestamp: t, latency_ms: 12.5, args_hash: argsHash(secretArgs) }));
    await sink.write(
      sampleEvent('globex', 8, {
        timestamp: t,
        result_status: 'denied',
        reason: 'TOOL_NOT_FOUND',
        tool_name: 'forecast',
      }),
    );
    await sink.write(sampleEvent(null, 9, { event_type: 'auth_failure', tool_name: null }));
    const spans = exporter.getFinishedSpans();
    expect(inner.events).toHaveLength(3);
    expect(spans).toHaveLength(2);
    const [ok, denied] = spans;
    expect(ok?.name).toBe('tools/call search_contacts');
    expect(ok?.kind).toBe(SpanKind.SERVER);
    expect(ok?.attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'search_contacts',
      'gen_ai.operation.name': 'execute_tool',
      'mcp.session.id': 'sess-0123456789abcdef0123456789abcdef0123456',
      'jsonrpc.request.id': '7',
      [TENANT_ATTRIBUTE]: 'acme',
    });
    const durationMs = (ok?.duration[0] ?? 0) * 1000 + (ok?.duration[1] ?? 0) / 1e6;
    expect(durationMs).toBeCloseTo(12.5, 1);
    expect(ok?.attributes['client.address']).toBeUndefined();
    expect(JSON.stringify(ok?.attributes)).not.toContain('jane@example.com');
    expect(denied?.attributes).toMatchObject({ 'error.type': 'TOOL_NOT_FOUND', [TENANT_ATTRIBUTE]: 'globex' });
    expect(denied?.status.code).toBe(SpanStatusCode.ERROR);
  });
});
