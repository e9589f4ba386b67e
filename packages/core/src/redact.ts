/** Replaces every occurrence of any of `values` in strings found anywhere inside `input`. */
export const REDACTED = '[REDACTED]';

export function redactDeep<T>(input: T, values: ReadonlySet<string>): { value: T; count: number } {
  if (values.size === 0) return { value: input, count: 0 };
  // Longest first, so a value that contains another is masked whole.
  const sorted = [...values].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
  let count = 0;
  const redactString = (s: string): string => {
    let out = s;
    for (const v of sorted) {
      if (out.includes(v)) {
        count += out.split(v).length - 1;
        out = out.split(v).join(REDACTED);
      }
    }
    return out;
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return redactString(v);
    if (depth > 64 || v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[redactString(k)] = walk(x, depth + 1);
    return o;
  };
  const value = walk(input, 0) as T;
  return { value, count };
}
