import type { z } from 'zod';
import { checkArguments } from './arguments.ts';
import { type AuditRecord, type AuditWriter, type Caller, refusalRecord, safeHash } from './audit-writer.ts';
import { TenantScopeError } from './errors.ts';
import { isRecord, jsonRpcError, toolRefusal } from './http.ts';

/** Tenant-identifying argument fields looked for when none are configured. */
export const DEFAULT_OVERRIDE_FIELDS: readonly string[] = ['tenant_id', 'tenantId'];

/** A field name as compared: lower case, without `_` and `-`. */
export function normaliseField(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}

/** Paths of every tenant-identifying key at any depth. */
export function findOverrideFields(value: unknown, fields: ReadonlySet<string>, path = '$', depth = 0): string[] {
  if (depth > 64 || value === null || typeof value !== 'object') return [];
  const found: string[] = [];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) found.push(...findOverrideFields(v, fields, `${path}[${i}]`, depth + 1));
    return found;
  }
  for (const [k, v] of Object.entries(value)) {
    if (fields.has(normaliseField(k))) found.push(`${path}.${k}`);
    found.push(...findOverrideFields(v, fields, `${path}.${k}`, depth + 1));
  }
  return found;
}

/** A copy of `value` without the tenant-identifying keys, at any depth. */
export function stripOverrideFields(value: unknown, fields: ReadonlySet<string>, depth = 0): unknown {
  if (depth > 64 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => stripOverrideFields(v, fields, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(normaliseField(k))) out[k] = stripOverrideFields(v, fields, depth + 1);
  }
  return out;
}

export interface OverrideGuardOptions {
  /** Field names (compared case-insensitively, ignoring `_` and `-`). Default `tenant_id`, `tenantId`. */
  fields?: readonly string[];
  /** `refuse` (default) rejects the call; `strip` removes the fields. Both are audited. */
  mode?: 'refuse' | 'strip';
  /** The registered tool of that name, for the input-schema check. */
  tool: (name: string) => { name: string; input?: z.ZodRawShape } | undefined;
  audit: AuditWriter;
}

/** The session a request is answered in: its id and the tools it may call. */
export interface GuardedSession {
  readonly id: string;
  readonly registered: ReadonlySet<string>;
}

type ToolCallMessage = Record<string, unknown> & { params: Record<string, unknown> };

/**
 * Refusals of a tools/call decided before the SDK sees it, each audited in the caller's stream:
 * a tenant override (refused or stripped), arguments that fail the tool's input schema, and a tool
 * outside the caller's set (recorded here; the SDK answers it exactly as an unknown tool).
 */
export class OverrideGuard {
  readonly #fields: ReadonlySet<string>;
  readonly #strip: boolean;
  readonly #tool: OverrideGuardOptions['tool'];
  readonly #audit: AuditWriter;

  constructor(options: OverrideGuardOptions) {
    this.#fields = new Set((options.fields ?? DEFAULT_OVERRIDE_FIELDS).map(normaliseField));
    this.#strip = options.mode === 'strip';
    this.#tool = options.tool;
    this.#audit = options.audit;
  }

  /**
   * Checks every tools/call in the body (a message or a batch); strips overriding fields in place
   * in `strip` mode. Returns the answer to send instead of handing the body to the SDK, or undefined.
   * A refusal is an `isError` result with `_meta.code`; in a batch, every other request is refused
   * as BATCH_REFUSED, so none is dropped unanswered (or, for a call, unaudited).
   */
  async check(body: unknown, session: GuardedSession, caller: Caller): Promise<unknown> {
    const messages = Array.isArray(body) ? body : [body];
    const refused: ReturnType<typeof toolRefusal>[] = [];
    const settled = new Set<unknown>(); // messages already answered or audited here
    for (const m of messages) {
      if (!isRecord(m) || m.method !== 'tools/call' || !isRecord(m.params)) continue;
      const verdict = await this.#checkCall(m as ToolCallMessage, session, caller);
      if (verdict === undefined) continue; // the common case: nothing to refuse or record
      settled.add(m);
      if (verdict) refused.push(toolRefusal(m.id, verdict));
    }
    if (refused.length === 0) return undefined;
    if (!Array.isArray(body)) return refused[0];
    return this.#refuseBatch(messages, refused, settled, caller);
  }

  /** undefined: untouched; null: audited and passed on; an error: refused (and audited). */
  async #checkCall(m: ToolCallMessage, session: GuardedSession, caller: Caller) {
    const name = typeof m.params.name === 'string' ? m.params.name : '';
    const args = m.params.arguments;
    const paths = findOverrideFields(args, this.#fields);
    const unknown = !session.registered.has(name);
    const def = unknown ? undefined : this.#tool(name);
    let invalid = def && paths.length === 0 ? checkArguments(def, args) : undefined;
    if (paths.length === 0 && !unknown && !invalid) return undefined;
    const hash = safeHash(args);
    const record = (event: Pick<AuditRecord, 'event_type' | 'result_status' | 'reason'>) =>
      this.#audit.write({
        tenant_id: caller.tenant.id,
        session_id: session.id,
        subject: caller.tenant.subject,
        tool_name: name.slice(0, 128),
        args_hash: hash,
        ip_address: caller.ip,
        request_id: m.id === undefined ? null : String(m.id),
        ...event,
        latency_ms: performance.now() - caller.started,
      });
    if (paths.length > 0) {
      const strip = this.#strip;
      const reason = strip ? 'TENANT_OVERRIDE_STRIPPED' : 'TENANT_OVERRIDE';
      await record({ event_type: 'tenant_override', result_status: strip ? 'ok' : 'denied', reason });
      if (!strip) {
        return new TenantScopeError('TENANT_OVERRIDE', 'tenant-identifying fields are not accepted in tool arguments');
      }
      m.params.arguments = stripOverrideFields(args, this.#fields);
      invalid = def ? checkArguments(def, m.params.arguments) : undefined;
    }
    if (invalid) {
      await record({ event_type: 'tool_call', result_status: 'denied', reason: invalid.code });
      return invalid;
    }
    // A tool outside the set: the SDK answers it exactly as any unknown tool; we record the denial.
    if (unknown) await record({ event_type: 'tool_call', result_status: 'denied', reason: 'TOOL_NOT_FOUND' });
    return null;
  }

  async #refuseBatch(messages: unknown[], refused: unknown[], settled: Set<unknown>, caller: Caller) {
    const e = new TenantScopeError('BATCH_REFUSED', 'another call in this batch was refused; send this one alone');
    const answered = new Set(refused.map((a) => (a as { id?: unknown }).id));
    for (const m of messages) {
      if (!isRecord(m) || m.id === undefined || typeof m.method !== 'string' || answered.has(m.id)) continue;
      if (m.method !== 'tools/call') {
        refused.push(jsonRpcError(m.id, e));
        continue;
      }
      if (!settled.has(m)) await this.#audit.write(refusalRecord(caller, e.code, m));
      refused.push(toolRefusal(m.id, e));
    }
    return refused;
  }
}
