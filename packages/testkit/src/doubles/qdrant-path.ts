/**
 * Payload paths for the Qdrant protocol double, with Qdrant 1.19's grammar: a first key, then
 * `.key`, `[n]` or `[]` steps; a key is raw (Unicode letters/digits, `_`, `-`) or quoted (`"…"`,
 * any characters but `\` and `"`, no escapes). So `"tenant_id"` is the field tenant_id and
 * `"a.b"` one key with a dot in it. Anything else is refused as Qdrant refuses it ("Invalid json
 * path"). Reading, setting and removing follow Qdrant's `JsonPath::value_get/value_set/value_remove`.
 */
import { DoubleUnsupported } from './qdrant-errors.ts';

export type PathStep = { key: string } | { index: number } | { all: true };

const isRawChar = (c: string) => c === '_' || c === '-' || /^[\p{Alphabetic}\p{N}]$/u.test(c);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const parsed = new Map<string, PathStep[]>();

/** Parses a payload path; throws DoubleUnsupported (answered 400) like Qdrant's deserializer. */
export function parsePayloadPath(path: unknown): PathStep[] {
  if (typeof path !== 'string') throw new DoubleUnsupported('Format error in JSON body: a key must be a string');
  const hit = parsed.get(path);
  if (hit) return hit;
  const steps = parseUncached(path);
  if (parsed.size >= 4096) parsed.clear();
  parsed.set(path, steps);
  return steps;
}

function parseUncached(path: string): PathStep[] {
  const chars = [...path];
  let i = 0;
  const bad = () => new DoubleUnsupported(`Format error in JSON body: Invalid json path: '${path}'`);
  const readKey = (): string => {
    if (chars[i] === '"') {
      let out = '';
      for (i++; i < chars.length && chars[i] !== '"'; i++) {
        if (chars[i] === '\\') throw bad();
        out += chars[i];
      }
      if (chars[i] !== '"') throw bad();
      i++;
      return out;
    }
    const start = i;
    while (i < chars.length && isRawChar(chars[i]!)) i++;
    if (i === start) throw bad();
    return chars.slice(start, i).join('');
  };
  const steps: PathStep[] = [{ key: readKey() }];
  while (i < chars.length) {
    if (chars[i] === '.') {
      i++;
      steps.push({ key: readKey() });
    } else if (chars[i] === '[' && chars[i + 1] === ']') {
      steps.push({ all: true });
      i += 2;
    } else if (chars[i] === '[') {
      let digits = '';
      for (i++; i < chars.length && /^[0-9]$/.test(chars[i]!); i++) digits += chars[i];
      if (digits === '' || chars[i] !== ']' || BigInt(digits) > 2n ** 64n - 1n) throw bad();
      i++;
      steps.push({ index: Number(digits) });
    } else {
      throw bad();
    }
  }
  return steps;
}

/** One canonical spelling per path (for comparing a condition key with an indexed field name). */
export function canonicalPath(steps: readonly PathStep[]): string {
  return JSON.stringify(steps);
}

/** The values at a path (Qdrant's value_get): an array is entered only by `[n]` or `[]`. */
export function valuesAt(payload: Record<string, unknown>, steps: readonly PathStep[]): unknown[] {
  let current: unknown[] = [payload];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of current) {
      if ('all' in step) {
        if (Array.isArray(v)) next.push(...v);
      } else if ('index' in step) {
        if (Array.isArray(v) && step.index < v.length) next.push(v[step.index]);
      } else if (isObject(v) && Object.hasOwn(v, step.key)) {
        next.push(v[step.key]);
      }
    }
    current = next;
  }
  return current;
}

/** Merges `src` into `dest` as Qdrant's set_payload does: a null value removes the key. */
export function mergePayload(dest: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src)) {
    if (v === null) delete dest[k];
    else dest[k] = structuredClone(v);
  }
}

/**
 * set_payload with `key` (Qdrant's value_set): walks the path, turning a non-object under a key
 * step into an object, a non-array under an index step into an empty array (and then setting
 * nothing), and merging `src` into the object(s) the path ends at.
 */
export function setAtPath(payload: Record<string, unknown>, steps: readonly PathStep[], src: Record<string, unknown>) {
  const into = (holder: Record<string, unknown> | unknown[], slot: string | number, rest: readonly PathStep[]) => {
    const get = () => (holder as Record<string | number, unknown>)[slot];
    const put = (v: unknown) => {
      (holder as Record<string | number, unknown>)[slot] = v;
    };
    const [step, ...tail] = rest;
    if (!step) {
      if (!isObject(get())) put({});
      mergePayload(get() as Record<string, unknown>, src);
      return;
    }
    if ('key' in step) {
      if (!isObject(get())) put({});
      into(get() as Record<string, unknown>, step.key, tail);
    } else if ('index' in step) {
      if (!Array.isArray(get())) put([]);
      const arr = get() as unknown[];
      if (step.index < arr.length) into(arr, step.index, tail);
    } else {
      const v = get();
      if (Array.isArray(v)) for (let j = 0; j < v.length; j++) into(v, j, tail);
      else put([]);
    }
  };
  const [first, ...rest] = steps as [{ key: string }, ...PathStep[]];
  into(payload, first.key, rest);
}

/** delete_payload of one path (Qdrant's value_remove). */
export function removeAtPath(payload: Record<string, unknown>, steps: readonly PathStep[]): void {
  const walk = (v: unknown, rest: readonly PathStep[]) => {
    const [step, ...tail] = rest;
    if (!step) return;
    const last = tail.length === 0;
    if ('key' in step) {
      if (!isObject(v)) return;
      if (last) delete v[step.key];
      else walk(v[step.key], tail);
    } else if ('index' in step) {
      if (!Array.isArray(v) || step.index >= v.length) return;
      if (last) v.splice(step.index, 1);
      else walk(v[step.index], tail);
    } else if (Array.isArray(v)) {
      if (last) v.length = 0;
      else for (const x of v) walk(x, tail);
    }
  };
  walk(payload, steps);
}
