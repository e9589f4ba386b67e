/**
 * Qdrant's payload-key grammar (a JSON path), as its server parses `key`/`keys` (Qdrant 1.19,
 * `lib/segment/src/json_path/parse.rs`, written here from the grammar, not copied):
 *
 * ```
 * path   = first *( "." raw / "." quoted / "[" digits "]" / "[]" )
 * first  = raw / quoted
 * raw    = 1*( alphanumeric / "_" / "-" )      ; Unicode alphanumeric
 * quoted = DQUOTE *( any char but "\" and DQUOTE ) DQUOTE   ; no escapes
 * digits = 1*DIGIT                              ; fits an unsigned 64-bit integer
 * ```
 *
 * The whole string must parse; the server answers 400 ("Invalid json path") otherwise. So
 * `"tenant_id"`, `"tenant_id".x`, `tenant_id[]` and `tenant_id[0]` all start at the field
 * `tenant_id`, while `"tenant_id.x"` is one key with a dot in it.
 */

/** One step after the first key: an object key, an array index, or every element (`[]`). */
export type JsonPathStep = { key: string } | { index: bigint } | { all: true };

export interface JsonPath {
  firstKey: string;
  rest: JsonPathStep[];
}

const RAW = /[\p{Alphabetic}\p{N}_-]+/uy;
const QUOTED = /"([^\\"]*)"/y;
const INDEX = /\[(\d+)\]/y;
const USIZE_MAX = 2n ** 64n - 1n;

function at(re: RegExp, s: string, pos: number): RegExpExecArray | null {
  re.lastIndex = pos;
  return re.exec(s);
}

/** Parses a payload key as Qdrant does; `undefined` when Qdrant would refuse it. */
export function parseJsonPath(path: string): JsonPath | undefined {
  if (typeof path !== 'string') return undefined;
  let pos = 0;
  const key = (p: number): { key: string; end: number } | undefined => {
    const raw = at(RAW, path, p);
    if (raw) return { key: raw[0], end: p + raw[0].length };
    const q = at(QUOTED, path, p);
    if (q) return { key: q[1]!, end: p + q[0].length };
    return undefined;
  };
  const first = key(0);
  if (!first) return undefined;
  pos = first.end;
  const rest: JsonPathStep[] = [];
  while (pos < path.length) {
    if (path[pos] === '.') {
      const k = key(pos + 1);
      if (!k) return undefined;
      rest.push({ key: k.key });
      pos = k.end;
    } else if (path.startsWith('[]', pos)) {
      rest.push({ all: true });
      pos += 2;
    } else {
      const m = at(INDEX, path, pos);
      if (!m) return undefined;
      const n = BigInt(m[1]!);
      if (n > USIZE_MAX) return undefined;
      rest.push({ index: n });
      pos += m[0].length;
    }
  }
  return { firstKey: first.key, rest };
}
