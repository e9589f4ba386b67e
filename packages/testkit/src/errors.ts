/** Helpers for asserting typed errors in tests. */

/** What a failed call threw: its stable `code` and `message` typed, the rest reachable. */
export interface Rejection {
  code?: string;
  message: string;
  [field: string]: unknown;
}

/**
 * The stable `code` a call (a promise, or a function that may throw or reject) failed with, or
 * `'ok'` if it succeeded. An error without a string `code` is rethrown: a test that expects a
 * typed refusal must not pass on an untyped crash.
 */
export async function codeOf(call: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof call === 'function' ? call() : call);
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string') return code;
    throw err;
  }
}

/** What a call (a promise, or a function) threw or rejected with; fails if it succeeded. */
export async function rejection(call: Promise<unknown> | (() => unknown)): Promise<Rejection> {
  try {
    await (typeof call === 'function' ? call() : call);
  } catch (err) {
    return err as Rejection;
  }
  throw new Error('expected a rejection, but the call succeeded');
}
