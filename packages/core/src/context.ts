import { AsyncLocalStorage } from 'node:async_hooks';
import { TenantScopeError } from './errors.ts';
import type { ResultBudget } from './result-limit.ts';
import type { Tenant } from './tenant.ts';

/** Structured log fields. Values that match a secret read during the call are redacted. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Where log records go. Default: one JSON line per record on stderr. */
export type LogWriter = (record: Record<string, unknown>) => void;

export const stderrLogWriter: LogWriter = (record) => {
  process.stderr.write(`${JSON.stringify(record)}\n`);
};

/** What a provider learns about the call it builds a resource for. */
export interface CallInfo {
  readonly tenant: Tenant;
  readonly subject: string;
  readonly sessionId: string;
  readonly requestId: string;
  readonly toolName: string;
  /** Secret names the tool declared (see `@tenantscope/secrets`). */
  readonly declaredSecrets: readonly string[];
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /**
   * The byte budget of this call's result (the tool's `maxResultBytes`, else the server's). A
   * provider that reads in pieces takes each piece's size and stops when `take` throws
   * `RESULT_TOO_LARGE`. Always set by the server; optional only for hand-built CallInfo in tests.
   */
  readonly resultBudget?: ResultBudget;
  /**
   * Registers a value that must not leave the server: it is masked in logs written through
   * `ctx.logger` and in the tool's result (the masking is audited).
   */
  addRedaction(value: string): void;
}

/**
 * Plugs a tenant-bound resource into `ctx` (e.g. `ctx.db`). Core calls `forCall` lazily, the
 * first time a handler touches the property, with the verified tenant of the call. It is
 * synchronous: a scoped client is a cheap object whose methods do the I/O.
 */
export interface ResourceProvider<T> {
  forCall(call: CallInfo): T;
  /** Called once after the handler finished, for resources that were created. */
  release?(resource: T, call: CallInfo): void | Promise<void>;
}

export type Providers = Record<string, ResourceProvider<unknown>>;

/** The resources a tool sees, one property per provider. */
export type ResourcesOf<P extends Providers> = {
  readonly [K in keyof P]: P[K] extends ResourceProvider<infer T> ? T : never;
};

/** The context every tool handler receives. The tool author never passes a tenant id. */
export type ToolContext<R = Record<never, never>> = {
  readonly tenant: Tenant;
  readonly subject: string;
  readonly sessionId: string;
  readonly requestId: string;
  readonly toolName: string;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** The byte budget of this call's result: take each piece's size while reading (see ResultBudget). */
  readonly resultBudget: ResultBudget;
} & R;

interface Store {
  tenant: Tenant;
  call: CallInfo;
}

const storage = new AsyncLocalStorage<Store>();

/** @internal Runs `fn` inside the tenant context of a call. */
export function runInTenantContext<T>(tenant: Tenant, call: CallInfo, fn: () => T): T {
  return storage.run({ tenant, call }, fn);
}

/** The tenant of the tool call in progress. Throws NO_TENANT_CONTEXT outside one; never falls back. */
export function currentTenant(): Tenant {
  const store = storage.getStore();
  if (!store) throw new TenantScopeError('NO_TENANT_CONTEXT', 'no tenant context: not inside a tool call');
  return store.tenant;
}

/** The call in progress, or undefined outside one. */
export function currentCall(): CallInfo | undefined {
  return storage.getStore()?.call;
}
