/**
 * Reads the fenced code blocks of a Markdown page and what their info strings say, so a test can
 * run a page verbatim. Info string: the language, then words and `key=value` / `key="a value"` pairs,
 * e.g. ```sh quickstart background ready="listening on"``` or ```ts file=server.ts```.
 */
export interface DocBlock {
  lang: string;
  /** Bare words after the language (`quickstart`, `background`, `cleanup`, `inspector`, …). */
  words: string[];
  /** `key=value` pairs after the language (`file`, `ready`). */
  attrs: Record<string, string>;
  body: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
}

export function parseBlocks(markdown: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S+)(.*)$/.exec(lines[i] ?? '');
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i] ?? '');
    if (i >= lines.length) throw new Error(`unclosed code block at line ${start + 1}`);
    const words: string[] = [];
    const attrs: Record<string, string> = {};
    for (const m of (open[2] ?? '').matchAll(/(\w+)=(?:"([^"]*)"|(\S+))|(\S+)/g)) {
      if (m[1]) attrs[m[1]] = m[2] ?? m[3] ?? '';
      else if (m[4]) words.push(m[4]);
    }
    blocks.push({ lang: open[1] ?? '', words, attrs, body: `${body.join('\n')}\n`, line: start + 1 });
  }
  return blocks;
}

/**
 * Splits one shell command line into words: single and double quotes, backslash-newline
 * continuations, and `$(cat FILE)` inside double quotes (replaced through `readFile`). Enough for
 * the Inspector commands of the quickstart; anything else it does not understand throws.
 */
export function shellWords(command: string, readFile: (path: string) => string): string[] {
  const text = command.replace(/\\\n\s*/g, ' ').trim();
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed ' in ${command}`);
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new Error(`unclosed " in ${command}`);
      const inner = text.slice(i + 1, end);
      cur += inner.replace(/\$\(cat ([^)\s]+)\)/g, (_m, path: string) => readFile(path).trim());
      if (/\$[({A-Za-z_]/.test(cur)) throw new Error(`unsupported expansion in ${command}`);
      i = end;
      inWord = true;
    } else if (c === '$' || c === '`' || c === '|' || c === ';' || c === '&' || c === '>' || c === '<') {
      throw new Error(`unsupported shell syntax ${c} in ${command}`);
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** One MCP request as the Inspector CLI would make it. */
export interface InspectorRequest {
  url: string;
  headers: Record<string, string>;
  method: string;
  toolName?: string;
  toolArgs: Record<string, unknown>;
}

/** Parses `npx @modelcontextprotocol/inspector --cli URL [--transport http] --header … --method …`. */
export function parseInspector(words: string[]): InspectorRequest {
  const cli = words.indexOf('--cli');
  const pkg = words.findIndex((w, i) => i > 0 && !w.startsWith('-')); // after npx's own flags (-y)
  if (words[0] !== 'npx' || words[pkg] !== '@modelcontextprotocol/inspector' || cli < pkg) {
    throw new Error(`not an Inspector CLI command: ${words.join(' ')}`);
  }
  const req: InspectorRequest = { url: '', headers: {}, method: '', toolArgs: {} };
  const rest = words.slice(cli + 1);
  const values = (i: number): string[] => {
    const out: string[] = [];
    for (let j = i + 1; j < rest.length && !(rest[j] as string).startsWith('--'); j++) out.push(rest[j] as string);
    return out;
  };
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i] as string;
    if (!w.startsWith('--')) {
      if (req.url) throw new Error(`unexpected word ${w}`);
      req.url = w;
      continue;
    }
    const vs = values(i);
    i += vs.length;
    if (w === '--transport') {
      if (vs[0] !== 'http') throw new Error(`transport ${vs[0]} is not http`);
    } else if (w === '--header') {
      for (const h of vs) {
        const colon = h.indexOf(':');
        if (colon < 0) throw new Error(`header without a colon: ${h}`);
        req.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
      }
    } else if (w === '--method') req.method = vs[0] ?? '';
    else if (w === '--tool-name') req.toolName = vs[0];
    else if (w === '--tool-arg') {
      for (const pair of vs) {
        const eq = pair.indexOf('=');
        if (eq < 0) throw new Error(`tool argument without =: ${pair}`);
        const raw = pair.slice(eq + 1);
        let value: unknown = raw;
        try {
          value = JSON.parse(raw); // as the Inspector does: numbers, booleans and JSON stay typed
        } catch {}
        req.toolArgs[pair.slice(0, eq)] = value;
      }
    } else throw new Error(`option ${w} is not understood by the test`);
  }
  if (!req.url || !req.method) throw new Error(`Inspector command needs a URL and --method: ${words.join(' ')}`);
  return req;
}
