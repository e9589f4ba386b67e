/**
 * The one key rule. Every key a tenant hands to the scoped client, and every tenant prefix, goes
 * through `checkKey` before it is joined to the tenant prefix; nothing else in this package builds
 * an object key.
 *
 * S3 keys are literal strings: the server never resolves `..` or decodes `%2e`. But tools, proxies,
 * SDKs and browsers that sit between an agent and the store do normalise paths differently, so a key
 * is accepted only if it is unambiguous under every common normalisation:
 *
 * - not empty, no leading `/`, no `.` / `..` / empty segments (so no `//` and no trailing `/`);
 * - no backslash (a path separator for Windows tooling and some proxies);
 * - no control characters (Unicode Cc: C0, DEL, C1), no U+FFFE/U+FFFF (not representable in the XML
 *   a listing comes back in), no lone surrogates (not valid UTF-8, so not a valid S3 key);
 * - tenant prefix + key at most 1,024 bytes of UTF-8 (the S3 limit).
 *
 * Percent sequences: a `%` is stored as the literal character `%` (the SDK sends it as `%25`). A key
 * is refused, though, if percent-decoding it (repeatedly, as a chain of decoding layers would, until
 * nothing changes) yields bytes that are not valid UTF-8 (e.g. the overlong `%c0%ae`) or a string
 * that breaks the rule above (e.g. `%2e%2e`, `..%2f`, `%252e%252e`, `%5c`, `%00`). The same check runs
 * on the NFKC form of the key and of every decoded form, so fullwidth `．．／` cannot become `../`.
 * The non-standard `%uXXXX` escapes (JavaScript's `unescape`, old IIS) count as a decoding layer too.
 * `report%20final.pdf` and `100%.txt` are fine and stored exactly as written.
 */
import { TenantScopeError } from '@tenantscope/core';

/** The S3 limit on a full object key, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024;

/** Why a key was refused. Stable strings, sent in `details.reason` of an `S3_KEY_INVALID` error. */
export type KeyProblem =
  | 'not_a_string'
  | 'empty'
  | 'leading_slash'
  | 'empty_segment'
  | 'dot_segment'
  | 'backslash'
  | 'control_character'
  | 'noncharacter'
  | 'lone_surrogate'
  | 'too_long'
  | 'percent_decodes_to_invalid_utf8'
  | 'percent_decodes_to_unsafe'
  | 'normalizes_to_unsafe';

const REASONS: Record<KeyProblem, string> = {
  not_a_string: 'the key must be a string',
  empty: 'the key is empty',
  leading_slash: 'the key starts with "/"',
  empty_segment: 'the key has an empty segment ("//" or a trailing "/")',
  dot_segment: 'the key has a "." or ".." segment',
  backslash: 'the key contains a backslash',
  control_character: 'the key contains a control character',
  noncharacter: 'the key contains U+FFFE or U+FFFF',
  lone_surrogate: 'the key contains a lone UTF-16 surrogate',
  too_long: `the key is longer than ${MAX_KEY_BYTES} bytes once the tenant prefix is added`,
  percent_decodes_to_invalid_utf8: 'a percent sequence in the key decodes to invalid UTF-8',
  percent_decodes_to_unsafe: 'the key, once percent-decoded, would break the key rule',
  normalizes_to_unsafe: 'the key, once Unicode-normalised (NFKC), would break the key rule',
};

// Cc (C0 controls, DEL, C1 controls) and the two XML-unrepresentable noncharacters.
const CONTROL = /\p{Cc}/u;
const NONCHAR = /[\ufffe\uffff]/u;
// In a `u` regex a surrogate range matches only surrogates that are not part of a pair.
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const PERCENT = /%[0-9a-fA-F]{2}/;
const PERCENT_U = /%u([0-9a-fA-F]{4})/g;

/** The literal checks on one string (no decoding). Returns the first problem, or undefined. */
function literalProblem(key: string): KeyProblem | undefined {
  if (key.length === 0) return 'empty';
  if (LONE_SURROGATE.test(key)) return 'lone_surrogate';
  if (CONTROL.test(key)) return 'control_character';
  if (NONCHAR.test(key)) return 'noncharacter';
  if (key.includes('\\')) return 'backslash';
  if (key.startsWith('/')) return 'leading_slash';
  for (const seg of key.split('/')) {
    if (seg === '') return 'empty_segment';
    if (seg === '.' || seg === '..') return 'dot_segment';
  }
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** One round of percent-decoding, byte-wise. Returns null if the bytes are not valid UTF-8. */
function percentDecodeOnce(s: string): string | null {
  if (!PERCENT.test(s)) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && i + 2 < s.length && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const cp = s.codePointAt(i) as number;
    for (const b of encoder.encode(String.fromCodePoint(cp))) bytes.push(b);
    i += cp > 0xffff ? 2 : 1;
  }
  try {
    return utf8.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

/** Returns the first problem with a key (relative to a tenant prefix), or undefined if it is safe. */
export function keyProblem(key: unknown, prefixBytes = 0): KeyProblem | undefined {
  if (typeof key !== 'string') return 'not_a_string';
  const literal = literalProblem(key);
  if (literal) return literal;
  if (prefixBytes + encoder.encode(key).byteLength > MAX_KEY_BYTES) return 'too_long';
  // Every form a chain of decoding layers (percent-decoding, NFKC, in any order and any number of
  // times) could turn the key into must pass too. Each step shortens or fixes the string, so the
  // set of forms is small; it is capped anyway.
  const seen = new Set<string>([key]);
  const work = [key];
  while (work.length > 0) {
    const form = work.pop() as string;
    const nfkc = form.normalize('NFKC');
    if (!seen.has(nfkc)) {
      if (literalProblem(nfkc)) return 'normalizes_to_unsafe';
      seen.add(nfkc);
      work.push(nfkc);
    }
    const decoded = percentDecodeOnce(form);
    if (decoded === null) return 'percent_decodes_to_invalid_utf8';
    if (!seen.has(decoded)) {
      if (literalProblem(decoded)) return 'percent_decodes_to_unsafe';
      seen.add(decoded);
      work.push(decoded);
    }
    // The non-standard `%uXXXX` form (JavaScript's `unescape`, old IIS) is a decoding layer too.
    const unescaped = form.replace(PERCENT_U, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    if (!seen.has(unescaped)) {
      if (literalProblem(unescaped)) return 'percent_decodes_to_unsafe';
      seen.add(unescaped);
      work.push(unescaped);
    }
    if (seen.size > 256) return 'percent_decodes_to_unsafe';
  }
  return undefined;
}

/** Throws `S3_KEY_INVALID` (400) unless `key` is safe. The message never echoes the key. */
export function checkKey(key: unknown, prefixBytes = 0, what = 'key'): asserts key is string {
  const problem = keyProblem(key, prefixBytes);
  if (problem) {
    throw new TenantScopeError('S3_KEY_INVALID', `invalid ${what}: ${REASONS[problem]}`, {
      status: 400,
      details: { reason: problem },
    });
  }
}

/**
 * Checks a tenant prefix: it must end in `/`, and without that slash pass the key rule. The trailing
 * slash is what keeps tenant `t1` from matching `t10/`.
 */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string' || !prefix.endsWith('/') || prefix.length < 2) {
    throw new TenantScopeError('INVALID_CONFIG', 'a tenant prefix must be a non-empty string ending in "/"');
  }
  const problem = keyProblem(prefix.slice(0, -1));
  if (problem) {
    throw new TenantScopeError('INVALID_CONFIG', `invalid tenant prefix: ${REASONS[problem]}`, {
      details: { reason: problem },
    });
  }
}

/**
 * Checks a listing filter (relative to the tenant). Empty means "everything"; one that ends in `/`
 * names a folder and must pass the key rule without it; anything else must pass the key rule as a
 * (possibly partial) key.
 */
export function checkListPrefix(prefix: unknown, prefixBytes: number): asserts prefix is string {
  if (prefix === '') return;
  if (typeof prefix === 'string' && prefix.endsWith('/')) {
    checkKey(prefix.slice(0, -1), prefixBytes + 1, 'list prefix');
    return;
  }
  checkKey(prefix, prefixBytes, 'list prefix');
}

/** UTF-8 length in bytes. */
export function byteLength(s: string): number {
  return encoder.encode(s).byteLength;
}
