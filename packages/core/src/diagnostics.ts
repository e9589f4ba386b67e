import type { TenantScopeError } from './errors.ts';
import { redactDeep } from './redact.ts';

const MAX_MESSAGE = 500;
const MAX_DEPTH = 4;

/**
 * The server-side diagnostics record of a failed call whose error wraps a cause (a driver or SDK
 * error): tenant, tool and request, the code the client saw, and each cause's class name, `code`
 * (e.g. a SQLSTATE) and message, truncated. Never a driver's `detail`, `where`, parameters or any
 * other field, which can carry row data; values the call registered as secrets are masked.
 * The client still sees only the code and message of the TenantScopeError.
 */
export function causeRecord(
  err: TenantScopeError,
  fields: Record<string, unknown>,
  redactions: ReadonlySet<string>,
): Record<string, unknown> {
  const causes: { name: string; code?: string; message: string }[] = [];
  let cause: unknown = err.cause;
  while (cause !== undefined && cause !== null && causes.length < MAX_DEPTH) {
    const c = cause as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
    const entry: { name: string; code?: string; message: string } = {
      name: typeof c.name === 'string' ? c.name.slice(0, 100) : typeof cause,
      message: String(typeof c.message === 'string' ? c.message : cause).slice(0, MAX_MESSAGE),
    };
    if (typeof c.code === 'string' || typeof c.code === 'number') entry.code = String(c.code).slice(0, 100);
    causes.push(entry);
    cause = typeof cause === 'object' ? c.cause : undefined;
  }
  const record = {
    level: err.status >= 500 ? 'error' : 'warn',
    time: new Date().toISOString(),
    msg: 'tool call failed',
    ...fields,
    code: err.code,
    causes,
  };
  return redactDeep(record, redactions).value;
}

/** Writes one server diagnostics record: level, message, the error's code and message, and fields. */
export type Diag = (level: string, msg: string, err: unknown, fields?: Record<string, unknown>) => void;

/** A `Diag` over a log writer. */
export function diagWriter(log: (record: Record<string, unknown>) => void): Diag {
  return (level, msg, err, fields = {}) => {
    const e = err as { code?: unknown; message?: unknown } | undefined;
    log({
      level,
      time: new Date().toISOString(),
      msg,
      error_code: e?.code,
      error: String(e?.message ?? err),
      ...fields,
    });
  };
}
