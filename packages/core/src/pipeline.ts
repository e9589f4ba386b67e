import { performance } from 'node:perf_hooks';
import { type CallToolResult, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import { type AuditStatus, argsHash } from './audit.ts';
import type { AuditRecord, AuditWriter } from './audit-writer.ts';
import { type CallInfo, type Logger, type LogWriter, type Providers, runInTenantContext } from './context.ts';
import { causeRecord, type Diag } from './diagnostics.ts';
import { effectiveTools, type TenantDirectory, type TenantPolicy } from './directory.ts';
import { isTenantScopeError, TenantScopeError } from './errors.ts';
import { errorResult } from './http.ts';
import type { CallLimiter } from './limits.ts';
import { redactDeep } from './redact.ts';
import { jsonByteLength, ResultBudget, resultTooLarge } from './result-limit.ts';
import { assertTenant, type Tenant } from './tenant.ts';
import { type ToolDefinition, type ToolResult, toCallToolResult } from './tool.ts';

/** A registered tool, its argument and resource types erased. */
export type AnyTool = ToolDefinition<z.ZodRawShape, never>;

/** One tools/call as the SDK hands it over, with the session it came in. */
export interface ToolCall {
  readonly session: { readonly id: string; readonly tenantId: string; readonly subject: string };
  readonly def: AnyTool;
  readonly args: Record<string, unknown>;
  readonly extra: {
    authInfo?: { extra?: Record<string, unknown> };
    signal: AbortSignal;
    requestId: string | number;
  };
}

/** What a call ended with: the result sent, and the status and reason its audit event records. */
export interface Outcome {
  readonly result: CallToolResult;
  readonly status: AuditStatus;
  readonly reason: string | null;
}

/**
 * One step of the pipeline, in the style of tRPC middleware: it gets the call's context so far
 * and `next`, which it calls (at most once) with the context the following steps need, or it
 * answers by itself without calling `next` (a refusal).
 */
export type Step<In, Out> = (ctx: In, next: (ctx: Out) => Promise<Outcome>) => Promise<Outcome>;

export interface PipelineOptions {
  directory: TenantDirectory;
  limiter: CallLimiter;
  /** The server's defaults where the tenant's policy or the tool sets none. */
  defaults: { callsPerMinute: number; maxConcurrentCalls: number; maxResultBytes: number };
  providers: Providers;
  audit: AuditWriter;
  log: LogWriter;
  diag: Diag;
}

/** After `principal`: the call bound to its verified tenant. */
interface Bound {
  readonly call: ToolCall;
  readonly tenant: Tenant;
  readonly requestId: string;
  /** This call's `tool_call` audit record with that status and reason. */
  record(status: AuditStatus, reason: string | null): AuditRecord;
}
/** After `acl`: the tool is in the caller's set under this policy. */
interface Allowed extends Bound {
  readonly policy: TenantPolicy;
}
/** After `redaction`: values to mask in the result and logs. */
interface Masked extends Allowed {
  readonly redactions: Set<string>;
}
/** After `context`: the handler's `ctx`. */
interface Ready extends Masked {
  readonly info: CallInfo;
  readonly ctx: Record<string, unknown>;
  readonly cap: number;
}

/**
 * Runs one tool call through the steps, in order: `principal` (the call's token matches its
 * session), `acl`, `audit`, `redaction`, `context`, `limits`, `failures`, then the handler with its
 * result cap. Every refusal or failure of a call is an `isError` result carrying `_meta.code`; the
 * one exception is a tool outside the caller's set, answered exactly as the SDK answers an unknown
 * tool (so a tenant cannot tell a hidden tool from a missing one).
 */
export function callPipeline(options: PipelineOptions): (call: ToolCall) => Promise<CallToolResult> {
  const run = chain<ToolCall>()
    .use(principal)
    .use(acl(options))
    .use(audit(options))
    .use(redaction(options))
    .use(context(options))
    .use(limits(options))
    .use(failures(options))
    .end(handler);
  return async (call) => {
    try {
      return (await run(call)).result;
    } catch (err) {
      if (isTenantScopeError(err)) return errorResult(err);
      throw err; // the SDK's unknown-tool answer, byte for byte
    }
  };
}

// --- the steps, in order -------------------------------------------------------------------------

/** The request's verified principal is the session's: else SESSION_MISMATCH, before anything runs. */
const principal: Step<ToolCall, Bound> = (call, next) => {
  const started = performance.now();
  const { session, def, args, extra } = call;
  const tenant = extra.authInfo?.extra?.tenant;
  assertTenant(tenant, 'a tool call');
  const ip = (extra.authInfo?.extra?.ip as string | null | undefined) ?? null;
  if (tenant.id !== session.tenantId || tenant.subject !== session.subject) {
    throw new TenantScopeError('SESSION_MISMATCH', 'session belongs to another principal');
  }
  const requestId = String(extra.requestId);
  const hash = argsHash(args); // once per call, however many events it writes
  const record = (status: AuditStatus, reason: string | null): AuditRecord => ({
    tenant_id: tenant.id,
    session_id: session.id,
    subject: tenant.subject,
    event_type: 'tool_call',
    tool_name: def.name,
    args_hash: hash,
    result_status: status,
    reason,
    latency_ms: performance.now() - started,
    ip_address: ip,
    request_id: requestId,
  });
  return next({ call, tenant, requestId, record });
};

/**
 * ACL again at call time, against this request's token and the current policy. A tool outside the
 * set writes one denial and is answered exactly as the SDK answers an unknown tool.
 */
function acl(o: PipelineOptions): Step<Bound, Allowed> {
  return async function acl(ctx, next) {
    const name = ctx.call.def.name;
    const policy = await o.directory.get(ctx.tenant.id);
    if (!policy || !effectiveTools([name], policy, ctx.tenant).has(name)) {
      await o.audit.write(ctx.record('denied', 'TOOL_NOT_FOUND'));
      throw new McpError(ErrorCode.InvalidParams, `Tool ${name} not found`);
    }
    return next({ ...ctx, policy });
  };
}

/** One `tool_call` event per call, with the outcome; a call whose event cannot be written fails. */
function audit(o: PipelineOptions): Step<Allowed, Allowed> {
  return async function audit(ctx, next) {
    const outcome = await next(ctx);
    await o.audit.write(ctx.record(outcome.status, outcome.reason));
    return outcome;
  };
}

/** Masks the values the call registered as secrets in its result; the masking is audited. */
function redaction(o: PipelineOptions): Step<Allowed, Masked> {
  return async function redaction(ctx, next) {
    const redactions = new Set<string>();
    const outcome = await next({ ...ctx, redactions });
    const masked = redactDeep(outcome.result, redactions);
    if (masked.count === 0) return outcome;
    await o.audit.write({ ...ctx.record('ok', 'SECRET_REDACTED'), event_type: 'secret_redacted' });
    return { ...outcome, result: masked.value };
  };
}

/** Builds `ctx` (providers bound lazily to the call); releases what the handler created. */
function context(o: PipelineOptions): Step<Masked, Ready> {
  return async function context(ctx, next) {
    const { call, tenant, requestId, redactions } = ctx;
    const cap = call.def.maxResultBytes ?? o.defaults.maxResultBytes;
    const info: CallInfo = {
      tenant,
      subject: tenant.subject,
      sessionId: call.session.id,
      requestId,
      toolName: call.def.name,
      declaredSecrets: Object.freeze([...(call.def.secrets ?? [])]),
      signal: call.extra.signal,
      logger: callLogger(o.log, identityOf(tenant, call, requestId), redactions),
      resultBudget: new ResultBudget(cap),
      addRedaction: (value: string) => {
        if (typeof value === 'string' && value.length >= 4) redactions.add(value);
      },
    };
    const created: { key: string; value: unknown }[] = [];
    try {
      return await next({ ...ctx, info, ctx: handlerContext(o.providers, info, created), cap });
    } finally {
      await releaseResources(o, info, created);
    }
  };
}

/** Per-tenant rate and concurrency limits; a refusal is a denied call. The slot is freed after the handler. */
function limits(o: PipelineOptions): Step<Ready, Ready> {
  return async function limits(ctx, next) {
    let release: () => void;
    try {
      release = await o.limiter.acquire(ctx.tenant.id, {
        callsPerMinute: ctx.policy.limits?.callsPerMinute ?? o.defaults.callsPerMinute,
        maxConcurrentCalls: ctx.policy.limits?.maxConcurrentCalls ?? o.defaults.maxConcurrentCalls,
      });
    } catch (err) {
      const e = isTenantScopeError(err) ? err : new TenantScopeError('RATE_LIMITED', 'rate limited');
      return { result: errorResult(e), status: 'denied', reason: e.code };
    }
    try {
      return await next(ctx);
    } finally {
      release();
    }
  };
}

/**
 * A failed handler: a tenantscope error reaches the client as `CODE: message` (its cause goes to the
 * diagnostics log only); any other error is `INTERNAL` with no message.
 */
function failures(o: PipelineOptions): Step<Ready, Ready> {
  return async function failures(ctx, next) {
    try {
      return await next(ctx);
    } catch (err) {
      const fields = { tenant_id: ctx.tenant.id, tool_name: ctx.call.def.name };
      if (isTenantScopeError(err)) {
        if (err.cause !== undefined) o.log(causeRecord(err, { ...fields, request_id: ctx.requestId }, ctx.redactions));
        return { result: errorResult(err), status: 'error', reason: err.code };
      }
      o.diag('error', 'tool handler failed', err, fields);
      return {
        result: errorResult(new TenantScopeError('INTERNAL', 'the tool failed')),
        status: 'error',
        reason: 'INTERNAL',
      };
    }
  };
}

/** The handler, in the tenant's context, and its result cap. */
async function handler(ctx: Ready): Promise<Outcome> {
  const { call, tenant, info, cap } = ctx;
  const value: ToolResult = await runInTenantContext(tenant, info, () =>
    call.def.handler(call.args as never, ctx.ctx as never),
  );
  return { result: capResult(value, cap), status: 'ok', reason: null };
}

/** The result as sent, or RESULT_TOO_LARGE: measured without serialising (a walk to the cap, not a copy). */
export function capResult(value: ToolResult, cap: number): CallToolResult {
  if (jsonByteLength(value, cap) > cap) throw resultTooLarge(cap);
  const result = toCallToolResult(value);
  if (result !== value && jsonByteLength(result, cap) > cap) throw resultTooLarge(cap);
  return result;
}

// --- composition and helpers ---------------------------------------------------------------------

interface Chain<In, Cur> {
  use<Out>(step: Step<Cur, Out>): Chain<In, Out>;
  end(last: (ctx: Cur) => Promise<Outcome>): (ctx: In) => Promise<Outcome>;
}

/** Composes steps in order: each one's `next` runs the rest of the chain. */
export function chain<In>(): Chain<In, In> {
  const from = <Cur>(run: (ctx: In, last: (ctx: Cur) => Promise<Outcome>) => Promise<Outcome>): Chain<In, Cur> => ({
    use: <Out>(step: Step<Cur, Out>) => from<Out>((ctx, last) => run(ctx, (c) => step(c, last))),
    end: (last) => (ctx) => run(ctx, last),
  });
  return from<In>((ctx, last) => last(ctx));
}

function identityOf(tenant: Tenant, call: ToolCall, requestId: string): Record<string, unknown> {
  return { tenant_id: tenant.id, session_id: call.session.id, tool_name: call.def.name, request_id: requestId };
}

/** `ctx.logger`: JSON records with the call's identity, secrets masked. */
function callLogger(log: LogWriter, identity: Record<string, unknown>, redactions: Set<string>): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    const record = { level, time: new Date().toISOString(), msg: message, ...identity, ...fields };
    log(redactDeep(record, redactions).value);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** The handler's frozen `ctx`: the call's identity and one lazy property per provider. */
function handlerContext(
  providers: Providers,
  call: CallInfo,
  created: { key: string; value: unknown }[],
): Record<string, unknown> {
  const ctx: Record<string, unknown> = {
    tenant: call.tenant,
    subject: call.subject,
    sessionId: call.sessionId,
    requestId: call.requestId,
    toolName: call.toolName,
    signal: call.signal,
    logger: call.logger,
    resultBudget: call.resultBudget,
  };
  for (const [key, provider] of Object.entries(providers)) {
    let cached: { value: unknown } | undefined;
    Object.defineProperty(ctx, key, {
      enumerable: true,
      get: () => {
        if (!cached) {
          cached = { value: provider.forCall(call) };
          created.push({ key, value: cached.value });
        }
        return cached.value;
      },
    });
  }
  return Object.freeze(ctx);
}

async function releaseResources(o: PipelineOptions, call: CallInfo, created: { key: string; value: unknown }[]) {
  for (const { key, value } of created) {
    try {
      await o.providers[key]?.release?.(value, call);
    } catch (err) {
      o.diag('error', 'resource release failed', err, { provider: key });
    }
  }
}
