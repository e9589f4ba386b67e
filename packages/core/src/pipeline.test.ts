import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from './audit.ts';
import type { CallInfo, Providers } from './context.ts';
import { StaticTenantDirectory } from './directory.ts';
import { TenantScopeError } from './errors.ts';
import type { CallLimiter } from './limits.ts';
import { type AnyTool, callPipeline, chain, type Outcome, type ToolCall } from './pipeline.ts';
import type { Tenant } from './tenant.ts';
import { TestAuditSink, type TestTenants, testTenants, testWriter } from './test-helpers.ts';

let tenants: TestTenants;
let acme: Tenant;
beforeAll(async () => {
  tenants = await testTenants();
  acme = await tenants.tenant('acme');
});

/** A sink that also records where in the call its events land. */
class TracingSink extends TestAuditSink {
  readonly trace: string[];
  constructor(trace: string[]) {
    super();
    this.trace = trace;
  }
  override async write(event: AuditEvent): Promise<void> {
    this.trace.push(`audit:${event.event_type}:${event.reason}`);
    return super.write(event);
  }
}

function setup(opts: { refuseLimit?: boolean; onAuditFailure?: 'deny' | 'allow' } = {}) {
  const trace: string[] = [];
  const sink = new TracingSink(trace);
  const { writer } = testWriter(sink, opts.onAuditFailure);
  const directory = new StaticTenantDirectory({ acme: { tools: ['echo', 'big'] }, globex: { tools: ['echo'] } });
  const limiter: CallLimiter = {
    async acquire() {
      trace.push('acquire');
      if (opts.refuseLimit) throw new TenantScopeError('RATE_LIMITED', 'too many calls');
      return () => trace.push('release');
    },
  };
  const providers: Providers = {
    res: {
      forCall: (call: CallInfo) => {
        trace.push('provider.forCall');
        call.addRedaction('s3cr3t-value');
        return { tenant: call.tenant.id };
      },
      release: () => {
        trace.push('provider.release');
      },
    },
  };
  const logs: Record<string, unknown>[] = [];
  const run = callPipeline({
    directory: {
      get: (id) => {
        trace.push('acl');
        return directory.get(id);
      },
    },
    limiter,
    defaults: { callsPerMinute: 600, maxConcurrentCalls: 32, maxResultBytes: 1024 },
    providers,
    audit: writer,
    log: (r) => logs.push(r),
    diag: (level, msg) => logs.push({ level, msg }),
  });
  return { trace, sink, run, logs };
}

function tool(name: string, handler: (args: never, ctx: Record<string, unknown>) => unknown, extra = {}): AnyTool {
  return { name, description: name, handler, ...extra } as unknown as AnyTool;
}

function callOf(def: AnyTool, tenant = acme, session = { id: 's1', tenantId: 'acme', subject: 'agent-1' }): ToolCall {
  return {
    session,
    def,
    args: { q: 'x' },
    extra: { authInfo: { extra: { tenant, ip: '127.0.0.1' } }, signal: new AbortController().signal, requestId: 9 },
  };
}

describe('callPipeline', () => {
  it('runs the steps in order: acl, limits, context, handler, then releases, then one audit event', async () => {
    const { trace, sink, run } = setup();
    const echo = tool('echo', (_a, ctx) => {
      const res = ctx.res as { tenant: string }; // the provider is bound on first use
      trace.push('handler');
      return { from: res.tenant };
    });
    const result = await run(callOf(echo));
    expect(result.structuredContent).toEqual({ from: 'acme' });
    expect(trace).toEqual([
      'acl',
      'acquire',
      'provider.forCall',
      'handler',
      'release',
      'provider.release',
      'audit:tool_call:null',
    ]);
    expect(sink.events).toMatchObject([
      { tenant_id: 'acme', session_id: 's1', tool_name: 'echo', result_status: 'ok', request_id: '9' },
    ]);
  });

  it('a tool refused by the ACL never runs the handler and writes one refusal event (answered as an unknown tool)', async () => {
    const { trace, sink, run } = setup();
    const hidden = tool('admin', () => trace.push('handler'));
    const refused = run(callOf(hidden));
    await expect(refused).rejects.toBeInstanceOf(McpError);
    await expect(refused).rejects.toMatchObject({
      code: ErrorCode.InvalidParams,
      message: expect.stringContaining('Tool admin not found'),
    });
    expect(trace).toEqual(['acl', 'audit:tool_call:TOOL_NOT_FOUND']);
    expect(sink.events).toMatchObject([{ result_status: 'denied', reason: 'TOOL_NOT_FOUND', tool_name: 'admin' }]);
  });

  it('the token’s allowed_tools narrow the ACL at call time too', async () => {
    const { trace, run } = setup();
    const narrowed = await tenants.tenant('acme', { allowed_tools: ['big'] });
    await expect(
      run(
        callOf(
          tool('echo', () => trace.push('handler')),
          narrowed,
        ),
      ),
    ).rejects.toBeInstanceOf(McpError);
    expect(trace).not.toContain('handler');
  });

  it('a rate-limited call never runs the handler: one denied event, an isError result', async () => {
    const { trace, sink, run } = setup({ refuseLimit: true });
    const result = await run(callOf(tool('echo', () => trace.push('handler'))));
    expect(result).toMatchObject({ isError: true, _meta: { code: 'RATE_LIMITED' } });
    expect(trace).toEqual(['acl', 'acquire', 'audit:tool_call:RATE_LIMITED']);
    expect(sink.events).toMatchObject([{ result_status: 'denied', reason: 'RATE_LIMITED' }]);
  });

  it('a call on another principal’s session is refused before anything runs or is written', async () => {
    const { trace, run } = setup();
    const globex = await tenants.tenant('globex');
    const result = await run(
      callOf(
        tool('echo', () => trace.push('handler')),
        globex,
      ),
    );
    expect(result).toMatchObject({ isError: true, _meta: { code: 'SESSION_MISMATCH' } });
    expect(trace).toEqual([]);
  });

  it('maps handler failures: a tenantscope error keeps its code (cause logged server-side), others are INTERNAL', async () => {
    const { sink, run, logs } = setup();
    const typed = tool('echo', () => {
      throw new TenantScopeError('PG_QUERY_FAILED', 'query failed', { cause: new Error('row 42 of globex') });
    });
    const r1 = await run(callOf(typed));
    expect(r1).toMatchObject({ isError: true, _meta: { code: 'PG_QUERY_FAILED' } });
    expect(JSON.stringify(r1)).not.toContain('globex');
    expect(logs).toContainEqual(expect.objectContaining({ code: 'PG_QUERY_FAILED', tenant_id: 'acme' }));
    const r2 = await run(
      callOf(
        tool('echo', () => {
          throw new Error('secret internals');
        }),
      ),
    );
    expect(r2).toMatchObject({ isError: true, _meta: { code: 'INTERNAL' } });
    expect(JSON.stringify(r2)).not.toContain('secret internals');
    expect(sink.events.map((e) => [e.result_status, e.reason])).toEqual([
      ['error', 'PG_QUERY_FAILED'],
      ['error', 'INTERNAL'],
    ]);
  });

  it('masks registered secrets in the result and audits the masking before the call event', async () => {
    const { trace, run } = setup();
    const leaky = tool('echo', (_a, ctx) => ({ value: `${(ctx.res as object) && 's3cr3t-value'}` }));
    const result = await run(callOf(leaky));
    expect(JSON.stringify(result)).not.toContain('s3cr3t-value');
    expect(trace.filter((t) => t.startsWith('audit'))).toEqual([
      'audit:secret_redacted:SECRET_REDACTED',
      'audit:tool_call:null',
    ]);
  });

  it('caps the result (the tool’s own cap over the default): RESULT_TOO_LARGE, no data', async () => {
    const { sink, run } = setup();
    const big = tool('big', () => ({ rows: 'x'.repeat(200) }), { maxResultBytes: 64 });
    const result = await run(callOf(big));
    expect(result).toMatchObject({ isError: true, _meta: { code: 'RESULT_TOO_LARGE' } });
    expect(JSON.stringify(result)).not.toContain('xxxx');
    expect(sink.events).toMatchObject([{ result_status: 'error', reason: 'RESULT_TOO_LARGE' }]);
  });

  it('fails closed when the call’s event cannot be written: AUDIT_WRITE_FAILED instead of the result', async () => {
    const { sink, run } = setup();
    sink.failing = true;
    const result = await run(callOf(tool('echo', () => ({ data: 'must not leave' }))));
    expect(result).toMatchObject({ isError: true, _meta: { code: 'AUDIT_WRITE_FAILED' } });
    expect(JSON.stringify(result)).not.toContain('must not leave');
    const allowed = setup({ onAuditFailure: 'allow' });
    allowed.sink.failing = true;
    expect(await allowed.run(callOf(tool('echo', () => ({ data: 'ok' }))))).toMatchObject({
      structuredContent: { data: 'ok' },
    });
  });
});

describe('chain', () => {
  it('runs each step around the rest, in order, and lets a step answer without next', async () => {
    const seen: string[] = [];
    const ok: Outcome = { result: { content: [] }, status: 'ok', reason: null };
    const run = chain<number>()
      .use<string>(async (n, next) => {
        seen.push(`a:${n}`);
        const out = await next(`${n + 1}`);
        seen.push('a:after');
        return out;
      })
      .use<{ s: string }>(async (s, next) => (s === 'stop' ? { ...ok, reason: 'STOPPED' } : next({ s })))
      .end(async (c) => {
        seen.push(`end:${c.s}`);
        return ok;
      });
    expect(await run(1)).toBe(ok);
    expect(seen).toEqual(['a:1', 'end:2', 'a:after']);
  });
});
