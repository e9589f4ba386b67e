/**
 * Runs docs/quickstart.md verbatim, in a fresh folder outside the workspace, with the packages
 * installed from the tarballs scripts/pack.sh makes:
 *  - ```<lang> file=NAME``` blocks are written to NAME, ```sh quickstart``` blocks run (bash), in page
 *    order; the ```sh quickstart background ready="…"``` block is started and waited for;
 *  - each ```sh inspector``` command is parsed and the same request is made with the MCP SDK client
 *    (the Inspector itself is ~110 MB and a minute to install, too heavy for every CI run);
 *  - then the rest of the page runs (audit verification), and ```sh quickstart cleanup``` last (and
 *    first, in case an earlier run died half-way).
 * PostgreSQL: the suite's resolved server (inject('databaseUrl')) is the page's PG_ADMIN_URL.
 * Needs `psql` on PATH (CI: .ci/services.d/25-psql.sh).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type DocBlock, type InspectorRequest, parseBlocks, parseInspector, shellWords } from './blocks.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const page = readFileSync(join(root, 'docs/quickstart.md'), 'utf8');
const blocks = parseBlocks(page);
const DOC_URL = 'http://127.0.0.1:3000/mcp';

const isRun = (b: DocBlock) => b.lang === 'sh' && b.words.includes('quickstart');
const isCleanup = (b: DocBlock) => isRun(b) && b.words.includes('cleanup');
const isBackground = (b: DocBlock) => isRun(b) && b.words.includes('background');
const isInspector = (b: DocBlock) => b.lang === 'sh' && b.words.includes('inspector');
const isFile = (b: DocBlock) => b.attrs.file !== undefined;

let dir = '';
let env: NodeJS.ProcessEnv = {};
let server: ChildProcess | undefined;
let serverOut = '';
let mcpUrl = '';
const started = Date.now();

function psqlMissing(): boolean {
  return spawnSync('psql', ['--version'], { encoding: 'utf8' }).status !== 0;
}

function runBlock(b: DocBlock): string {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', b.body], {
    cwd: dir,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'], // stdin not a socket: bash would read bashrc as if run by sshd
    timeout: 180_000,
  });
  if (r.status !== 0) {
    throw new Error(
      `quickstart block at docs/quickstart.md:${b.line} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${b.body}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`,
    );
  }
  return r.stdout;
}

function writeBlock(b: DocBlock): void {
  const file = b.attrs.file as string;
  if (file.includes('/') || file.startsWith('.')) throw new Error(`file=${file} must be a plain name`);
  writeFileSync(join(dir, file), b.body);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (typeof addr !== 'object' || !addr) throw new Error('no port');
  return addr.port;
}

async function startBackground(b: DocBlock): Promise<void> {
  const ready = b.attrs.ready;
  if (!ready) throw new Error(`background block at line ${b.line} needs ready="…"`);
  server = spawn('bash', ['-euo', 'pipefail', '-c', `exec ${b.body.trim()}`], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (d) => {
    serverOut += String(d);
  });
  server.stderr?.on('data', (d) => {
    serverOut += String(d);
  });
  const deadline = Date.now() + 30_000;
  while (!serverOut.includes(ready)) {
    if (server.exitCode !== null)
      throw new Error(`server exited (${server.exitCode}) before "${ready}":\n${serverOut}`);
    if (Date.now() > deadline) throw new Error(`server did not print "${ready}" within 30 s:\n${serverOut}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs the page up to and including the background block; returns the blocks after it. */
async function runUntilServer(): Promise<DocBlock[]> {
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i] as DocBlock;
    if (isFile(b)) writeBlock(b);
    else if (isBackground(b)) {
      await startBackground(b);
      return blocks.slice(i + 1);
    } else if (isRun(b) && !isCleanup(b)) runBlock(b);
  }
  throw new Error('the quickstart has no ```sh quickstart background``` block');
}

/**
 * Tarballs of the current package sources: `scripts/pack.sh --cached` packs once per content of
 * the sources into .tmp/pack-cache/<key> and reuses it after that (CI's Node 24 pass and the
 * packaging pass reuse the main pass's).
 */
function packOnce(): string {
  const t0 = Date.now();
  const out = execFileSync('bash', [join(root, 'scripts/pack.sh'), '--cached'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 600_000,
  });
  const first = out.split('\n').find((l) => l.endsWith('.tgz'));
  if (!first) throw new Error(`scripts/pack.sh --cached printed no tarball:\n${out}`);
  console.log(`[quickstart] tarballs in ${dirname(first)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return dirname(first);
}

let after: DocBlock[] = [];

beforeAll(async () => {
  expect(psqlMissing(), 'psql must be on PATH (CI installs it in .ci/services.d/25-psql.sh)').toBe(false);
  dir = mkdtempSync(join(tmpdir(), 'tenantscope-quickstart-'));
  // TENANTSCOPE_TARBALLS (a folder of tarballs made by scripts/pack.sh) skips the build when
  // iterating locally; otherwise the tarballs of these exact package sources (packOnce).
  let tarballs = process.env.TENANTSCOPE_TARBALLS ?? '';
  if (tarballs) console.log(`[quickstart] using the tarballs in ${tarballs} (TENANTSCOPE_TARBALLS)`);
  else tarballs = packOnce();
  expect(readdirSync(tarballs).some((f) => /^tenantscope-core-.*\.tgz$/.test(f))).toBe(true);
  const port = await freePort();
  mcpUrl = `http://127.0.0.1:${port}/mcp`;
  // The caller's environment (proxy and CA settings npm needs), minus the test runner's own.
  env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(VITEST|NODE_OPTIONS$|NODE_ENV$|DATABASE_URL$)/.test(k)),
  );
  env = {
    ...env,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    npm_config_update_notifier: 'false',
    PG_ADMIN_URL: inject('databaseUrl'),
    TENANTSCOPE_TARBALLS: tarballs,
    PORT: String(port),
  };
  for (const b of blocks.filter(isCleanup)) runBlock(b); // a run that died half-way left them behind
  after = await runUntilServer();
  console.log(`[quickstart] server up after ${((Date.now() - started) / 1000).toFixed(1)} s in ${dir}`);
}, 420_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server?.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  try {
    if (dir && env.PG_ADMIN_URL) for (const b of blocks.filter(isCleanup)) runBlock(b);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`[quickstart] total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}, 60_000);

async function connect(headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'quickstart-test', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers } }));
  return client;
}

type Outcome = { result?: Record<string, unknown>; error?: { message: string; code?: unknown } };

async function perform(req: InspectorRequest): Promise<Outcome> {
  expect(req.url, 'the page uses the default URL').toBe(DOC_URL);
  const client = await connect(req.headers);
  try {
    if (req.method === 'tools/list') return { result: await client.listTools() };
    if (req.method === 'tools/call') {
      if (!req.toolName) throw new Error('tools/call needs --tool-name');
      return { result: await client.callTool({ name: req.toolName, arguments: req.toolArgs }) };
    }
    throw new Error(`method ${req.method} is not mirrored by the test`);
  } catch (e) {
    const err = e as { message?: string; data?: { code?: unknown } };
    return { error: { message: String(err.message), code: err.data?.code } };
  } finally {
    await client.close();
  }
}

/** The refusal code of an outcome, whether the server sent an isError result or a JSON-RPC error. */
function refusalCode(o: Outcome): unknown {
  if (o.error) return o.error.code ?? /\b([A-Z][A-Z_]+):/.exec(o.error.message)?.[1];
  if (o.result?.isError) return (o.result._meta as { code?: unknown } | undefined)?.code;
  return undefined;
}

function structured(o: Outcome): Record<string, unknown> {
  expect(o.error, JSON.stringify(o.error)).toBeUndefined();
  expect(o.result?.isError, JSON.stringify(o.result)).not.toBe(true);
  return o.result?.structuredContent as Record<string, unknown>;
}

function tokenOf(tenant: string): string {
  return readFileSync(join(dir, `${tenant}.token`), 'utf8').trim();
}

function auditEvents(tenant: string): Record<string, unknown>[] {
  const d = join(dir, 'audit', tenant);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(join(d, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => (JSON.parse(l) as { event: Record<string, unknown> }).event);
}

describe('docs/quickstart.md, run verbatim', () => {
  const steps: { req: InspectorRequest; tenant: string; outcome: Outcome }[] = [];

  it('every Inspector command of the page answers as the page says', async () => {
    const inspector = after.filter(isInspector);
    expect(inspector.length).toBeGreaterThanOrEqual(5);
    for (const b of inspector) {
      const commands = b.body
        .replace(/\\\n/g, '\\\n')
        .split(/(?<!\\)\n/)
        .map((c) => c.trim())
        .filter((c) => c && !c.startsWith('export '));
      for (const c of commands) {
        const words = shellWords(c, (p) => readFileSync(join(dir, p), 'utf8'));
        const req = parseInspector(words);
        const token = (req.headers.Authorization ?? '').replace(/^Bearer /, '');
        const tenant = ['acme', 'globex'].find((t) => tokenOf(t) === token) ?? '?';
        steps.push({ req, tenant, outcome: await perform(req) });
      }
    }
    const find = (
      tenant: string,
      method: string,
      tool?: string,
      pred: (s: (typeof steps)[0]) => boolean = () => true,
    ) => steps.find((s) => s.tenant === tenant && s.req.method === method && s.req.toolName === tool && pred(s));

    // tools/list: both tools, nothing else.
    const list = find('acme', 'tools/list');
    const names = ((list?.outcome.result?.tools ?? []) as { name: string }[]).map((t) => t.name).sort();
    expect(names).toEqual(['add_ticket', 'list_tickets']);
    // acme opens a ticket and sees it.
    const added = structured(find('acme', 'tools/call', 'add_ticket')?.outcome ?? {});
    expect(String(added.id)).toMatch(/^[0-9a-f-]{36}$/);
    const acmeList = structured(find('acme', 'tools/call', 'list_tickets')?.outcome ?? {});
    expect((acmeList.tickets as { id: string; title: string }[]).map((t) => t.id)).toContain(added.id);
    // globex sees none of acme's tickets: the page promises an empty list.
    const globexList = structured(find('globex', 'tools/call', 'list_tickets')?.outcome ?? {});
    expect(globexList.tickets).toEqual([]);
    // A tenant id in the arguments is refused with TENANT_OVERRIDE, and nothing is written.
    const override = find('globex', 'tools/call', 'add_ticket', (s) => 'tenant_id' in s.req.toolArgs);
    expect(override, 'the page shows a tenant override attempt').toBeDefined();
    expect(refusalCode(override?.outcome ?? {})).toBe('TENANT_OVERRIDE');
  });

  it('isolation holds beyond the page: writes stay with their tenant, bad tokens get 401', async () => {
    const globex = await connect({ Authorization: `Bearer ${tokenOf('globex')}` });
    const acme = await connect({ Authorization: `Bearer ${tokenOf('acme')}` });
    try {
      const g = structured({
        result: await globex.callTool({ name: 'add_ticket', arguments: { title: 'globex only' } }),
      });
      const a = structured({ result: await acme.callTool({ name: 'list_tickets', arguments: {} }) });
      const acmeIds = (a.tickets as { id: string; title: string }[]).map((t) => t.id);
      expect(acmeIds).not.toContain(g.id);
      expect(acmeIds.length).toBeGreaterThan(0);
      const gl = structured({ result: await globex.callTool({ name: 'list_tickets', arguments: {} }) });
      expect((gl.tickets as { title: string }[]).map((t) => t.title)).toEqual(['globex only']);
    } finally {
      await Promise.all([globex.close(), acme.close()]);
    }
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '0' } },
    };
    const post = (auth?: string) =>
      fetch(mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(auth ? { authorization: auth } : {}),
        },
        body: JSON.stringify(init),
      });
    const none = await post();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/resource_metadata=/);
    // A tenant the directory does not know is refused, though its token is valid (signed by the
    // page's own token script).
    const r = spawnSync('node', ['--env-file=.env', 'token.ts', 'initech', 'mallory'], {
      cwd: dir,
      env,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const unknown = await post(`Bearer ${r.stdout.trim()}`);
    expect([401, 403]).toContain(unknown.status);
    expect(await unknown.text()).not.toContain('acme');
    // A token signed by some other key, claiming acme, is refused.
    const [h, p] = tokenOf('acme').split('.');
    expect((await post(`Bearer ${h}.${p}.${'A'.repeat(86)}`)).status).toBe(401);
  });

  it('the audit trail has a line per call, in the right tenant stream, and verifies', async () => {
    const acme = auditEvents('acme');
    const globex = auditEvents('globex');
    expect(acme.every((e) => e.tenant_id === 'acme')).toBe(true);
    expect(globex.every((e) => e.tenant_id === 'globex')).toBe(true);
    const calls = (evs: Record<string, unknown>[]) => evs.filter((e) => e.event_type === 'tool_call');
    expect(calls(acme).map((e) => [e.tool_name, e.result_status])).toEqual(
      expect.arrayContaining([
        ['add_ticket', 'ok'],
        ['list_tickets', 'ok'],
      ]),
    );
    // The refused override is audited as a denial in globex's stream.
    expect(globex.some((e) => e.result_status === 'denied' && String(e.reason ?? '').includes('TENANT_OVERRIDE'))).toBe(
      true,
    );
    // Argument values never reach the trail.
    expect(JSON.stringify([...acme, ...globex])).not.toContain('Printer on fire');
    // The rest of the page: the verification script, run as written.
    let out = '';
    for (const b of after) {
      if (isFile(b)) writeBlock(b);
      else if (isRun(b) && !isCleanup(b) && !isBackground(b)) out += runBlock(b);
    }
    expect(out).toMatch(/^acme: ok, \d+ events$/m);
    expect(out).toMatch(/^globex: ok, \d+ events$/m);
  });
});
