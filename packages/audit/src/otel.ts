import { type Attributes, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { AuditEvent, AuditSink } from '@tenantscope/core';

/** Attribute carrying the verified tenant on every span. */
export const TENANT_ATTRIBUTE = 'tenantscope.tenant.id';

export interface OpenTelemetryOptions {
  /** Tracer to record with. Default `trace.getTracer('@tenantscope/audit')` (the global provider). */
  tracer?: Tracer;
  /**
   * Add `client.address`. Default false: a client address is personal data in many places, and
   * the audit stream already holds it (minimised).
   */
  includeClientAddress?: boolean;
  /** Add `enduser.id` (the token subject). Default false, for the same reason. */
  includeSubject?: boolean;
}

/**
 * An AuditSink decorator that records one OpenTelemetry span per tool call, named and attributed
 * after the MCP semantic conventions (`tools/call <tool>`, `mcp.method.name`, `gen_ai.tool.name`,
 * `gen_ai.operation.name`, `mcp.session.id`, `jsonrpc.request.id`, `error.type`) plus
 * `tenantscope.tenant.id`. Argument values are never attributes (events do not carry them).
 *
 * The span is built from the call's audit event, which core writes when the call ends: its start
 * is the event time minus `latency_ms`. It is therefore a complete, correctly timed span, but it
 * is recorded after the fact and is not the active context while the handler runs, so spans the
 * handler starts are not its children. Making it the parent needs a hook in core's call pipeline.
 */
export function withOpenTelemetry(sink: AuditSink, options: OpenTelemetryOptions = {}): AuditSink {
  const tracer = options.tracer ?? trace.getTracer('@tenantscope/audit');
  return {
    async write(event) {
      await sink.write(event);
      recordSpan(tracer, event, options);
    },
    close: sink.close ? () => sink.close?.() as Promise<void> : undefined,
  };
}

const TOOL_EVENTS = new Set(['tool_call', 'tenant_override']);

/** Records the span for one event (tool calls and refused tool calls only). */
export function recordSpan(tracer: Tracer, event: AuditEvent, options: OpenTelemetryOptions = {}): void {
  if (!TOOL_EVENTS.has(event.event_type) || !event.tool_name) return;
  const end = Date.parse(event.timestamp);
  if (Number.isNaN(end)) return;
  const start = end - Math.max(0, Number(event.latency_ms) || 0);
  const attributes: Attributes = {
    'mcp.method.name': 'tools/call',
    'gen_ai.operation.name': 'execute_tool',
    'gen_ai.tool.name': event.tool_name,
    'network.transport': 'tcp',
    'network.protocol.name': 'http',
    [TENANT_ATTRIBUTE]: event.tenant_id ?? '_unauthenticated',
    'tenantscope.result_status': event.result_status,
  };
  if (event.session_id) attributes['mcp.session.id'] = event.session_id;
  if (event.request_id != null) attributes['jsonrpc.request.id'] = event.request_id;
  if (event.result_status !== 'ok') attributes['error.type'] = event.reason ?? event.result_status;
  if (event.event_type === 'tenant_override') attributes['tenantscope.event_type'] = 'tenant_override';
  if (options.includeClientAddress && event.ip_address) attributes['client.address'] = event.ip_address;
  if (options.includeSubject && event.subject) attributes['enduser.id'] = event.subject;
  const span = tracer.startSpan(`tools/call ${event.tool_name}`, {
    kind: SpanKind.SERVER,
    startTime: start,
    attributes,
  });
  if (event.result_status !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: event.reason ?? undefined });
  span.end(end);
}
