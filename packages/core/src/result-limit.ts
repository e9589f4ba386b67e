import { TenantScopeError } from './errors.ts';

/** Largest tool result sent by default, in bytes of serialised JSON: 1 MiB. */
export const DEFAULT_MAX_RESULT_BYTES = 1024 * 1024;

/** The refusal of a result over the cap. Its message names the cap only, never any content. */
export function resultTooLarge(limit: number): TenantScopeError {
  return new TenantScopeError('RESULT_TOO_LARGE', `the result is larger than ${limit} bytes`, {
    details: { maxResultBytes: limit },
  });
}

/** Checks a cap given in configuration: a positive safe integer. */
export function checkResultCap(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TenantScopeError('INVALID_CONFIG', `${where}: maxResultBytes must be a positive integer`);
  }
  return value;
}

/**
 * The byte budget of one tool call's result, for code that reads a store in pieces (rows from a
 * cursor, objects from a listing, chunks of a body). Take each piece's size before keeping it: once
 * the total passes the cap, `take` throws `RESULT_TOO_LARGE`, so the reader stops early and never
 * holds more than the cap. The same cap is checked again on the whole result after the handler.
 *
 * ```ts
 * for await (const row of cursor) {
 *   ctx.resultBudget.takeJson(row); // throws RESULT_TOO_LARGE past the cap: stop reading
 *   rows.push(row);
 * }
 * ```
 */
export class ResultBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number = DEFAULT_MAX_RESULT_BYTES) {
    this.limit = checkResultCap(limit, 'ResultBudget');
  }

  /** Bytes taken so far. */
  get used(): number {
    return this.#used;
  }
  /** Bytes left before the cap. */
  get remaining(): number {
    return Math.max(0, this.limit - this.#used);
  }

  /** Counts `bytes` against the budget; throws RESULT_TOO_LARGE once the total is past the cap. */
  take(bytes: number): void {
    if (!Number.isFinite(bytes) || bytes < 0) throw resultTooLarge(this.limit);
    this.#used += bytes;
    if (this.#used > this.limit) throw resultTooLarge(this.limit);
  }

  /** Counts a value's serialised JSON size (measured without building the string, see `jsonByteLength`). */
  takeJson(value: unknown): void {
    this.take(jsonByteLength(value, this.remaining));
  }
}

/**
 * UTF-8 byte length of `JSON.stringify(value)`, measured without building the text, or `Infinity`
 * as soon as it passes `limit`: the walk stops there, so a 300 MB value costs no more than the cap.
 * Follows `JSON.stringify`'s rules (`toJSON`, dropped `undefined`/functions/symbols, `null` for
 * non-finite numbers). A value `JSON.stringify` would throw on (a BigInt, a cycle) throws
 * `RESULT_INVALID`, so it is refused here instead of failing later while the answer is written.
 */
export function jsonByteLength(value: unknown, limit: number): number {
  const state = { total: 0, limit };
  const ancestors = new Set<object>();
  measure(value, '', state, ancestors);
  return state.total > limit ? Number.POSITIVE_INFINITY : state.total;
}

interface MeasureState {
  total: number;
  limit: number;
}

/** Adds the size of one value; returns false when it serialises to nothing (dropped in objects). */
function measure(input: unknown, key: string, s: MeasureState, ancestors: Set<object>): boolean {
  if (s.total > s.limit) return true;
  let value = input;
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (k: string) => unknown }).toJSON(key);
  }
  switch (typeof value) {
    case 'string':
      s.total += stringBytes(value, s.limit - s.total);
      return true;
    case 'number':
      s.total += Number.isFinite(value) ? String(value).length : 4;
      return true;
    case 'boolean':
      s.total += value ? 4 : 5;
      return true;
    case 'bigint':
      throw new TenantScopeError('RESULT_INVALID', 'the result is not JSON (a BigInt)');
    case 'undefined':
    case 'function':
    case 'symbol':
      return false;
    default:
      break;
  }
  if (value === null) {
    s.total += 4;
    return true;
  }
  const obj = value as object;
  if (ancestors.has(obj)) throw new TenantScopeError('RESULT_INVALID', 'the result is not JSON (a cycle)');
  ancestors.add(obj);
  try {
    if (Array.isArray(obj)) {
      s.total += 2 + Math.max(0, obj.length - 1); // brackets and commas
      for (let i = 0; i < obj.length && s.total <= s.limit; i++) {
        if (!measure(obj[i], String(i), s, ancestors)) s.total += 4; // null
      }
      return true;
    }
    s.total += 2;
    let members = 0;
    for (const k of Object.keys(obj)) {
      if (s.total > s.limit) break;
      const before = s.total;
      if (members > 0) s.total += 1; // comma
      s.total += stringBytes(k, s.limit - s.total) + 1; // "key":
      if (measure((obj as Record<string, unknown>)[k], k, s, ancestors)) members++;
      else s.total = before; // dropped member
    }
    return true;
  } finally {
    ancestors.delete(obj);
  }
}

/** Printable ASCII other than `"` and `\`: one byte each in UTF-8, nothing JSON escapes. */
const PLAIN = /^[ !#-[\]-~]*$/;

/** Bytes of a string as a JSON string literal; anything past `room` is reported as just over it. */
function stringBytes(value: string, room: number): number {
  // Every UTF-16 unit is at least one byte of JSON: a string longer than the room is over already.
  if (value.length > room) return room + 1;
  // Plain ASCII (the common case) is its length plus the quotes, found without a copy.
  if (PLAIN.test(value)) return value.length + 2;
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}
