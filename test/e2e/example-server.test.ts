/** The example server's env contract, and the README's demo command, as a user would run them. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseLine } from '@tenantscope/audit';
import { createTestIssuer, freePort } from '@tenantscope/testkit';
import { afterEach, describe, expect, inject, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGTERM');
});

function start(env: Record<string, string>): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, ['examples/crm-server/src/main.ts'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: inject('databaseUrl'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 90_000);
    const poll = setInterval(() => {
      if (out.includes('audit streams:') && (!out.includes('dev mode') || out.includes('mcpServers'))) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve({ child, out: () => out });
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`server exited ${code}:\n${out}\n${err}`));
    });
  });
}

async function connect(url: string, token: string): Promise<Client> {
  const c = new Client({ name: 'contract', version: '0' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
  );
  return c;
}

describe('examples/crm-server env contract', () => {
  it('dev mode: prints a token per tenant and a client config; serves MCP and metadata on PORT', async () => {
    const port = await freePort();
    const auditDir = await mkdtemp(join(tmpdir(), 'crm-audit-'));
    const { out } = await start({ PORT: String(port), TENANTSCOPE_AUDIT_DIR: auditDir });
    const text = out();
    const url = `http://localhost:${port}/mcp`;
    expect(text).toContain(`MCP at ${url}`);
    const tokens = Object.fromEntries(
      [...text.matchAll(/token for (\w+) \(1 h\):\n(\S+)/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    expect(Object.keys(tokens).sort()).toEqual(['acme', 'globex', 'initech']);
    const config = JSON.parse(text.slice(text.indexOf('{', text.indexOf('client config'))));
    expect(config.mcpServers['tenantscope-acme'].url).toBe(url);
    const meta = (await (await fetch(`http://localhost:${port}/.well-known/oauth-protected-resource/mcp`)).json()) as {
      resource: string;
    };
    expect(meta.resource).toBe(url);
    const acme = await connect(url, tokens.acme as string);
    const r = await acme.callTool({ name: 'whoami', arguments: {} });
    expect(r.structuredContent).toMatchObject({ tenant_id: 'acme' });
    const names = (await acme.listTools()).tools.map((t) => t.name);
    expect(names).toContain('company_report');
    expect(names).not.toContain('forecast');
    await acme.close();
    // TENANTSCOPE_AUDIT_DIR holds the hash-chained JSONL streams, one folder per tenant.
    const files = await readdir(join(auditDir, 'acme'));
    expect(files.length).toBeGreaterThan(0);
    const events = (await Promise.all(files.map((f) => readFile(join(auditDir, 'acme', f), 'utf8'))))
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(parseLine(l)?.event ?? 'null'));
    expect(events.some((e) => e?.tool_name === 'whoami' && e?.tenant_id === 'acme')).toBe(true);
    await expect(readdir(join(auditDir, 'globex'))).rejects.toThrow();
  });

  it('TENANTSCOPE_JWKS_FILE, TENANTSCOPE_ISSUER, TENANTSCOPE_AUDIENCE and TENANTSCOPE_TENANTS_FILE', async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'crm-cfg-'));
    const audience = `http://localhost:${port}/mcp`;
    const issuer = await createTestIssuer({ issuer: 'https://idp.example.test', audience });
    await writeFile(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
    await writeFile(join(dir, 'tenants.json'), JSON.stringify({ tenants: { solo: { tools: ['whoami'] } } }));
    const { out } = await start({
      PORT: String(port),
      TENANTSCOPE_ISSUER: 'https://idp.example.test',
      TENANTSCOPE_AUDIENCE: audience,
      TENANTSCOPE_JWKS_FILE: join(dir, 'jwks.json'),
      TENANTSCOPE_TENANTS_FILE: join(dir, 'tenants.json'),
      TENANTSCOPE_AUDIT_DIR: join(dir, 'audit'),
    });
    expect(out()).not.toContain('dev mode');
    const solo = await connect(audience, await issuer.mint({ tenant: 'solo' }));
    expect((await solo.listTools()).tools.map((t) => t.name)).toEqual(['whoami']);
    await solo.close();
    const stranger = await createTestIssuer({ issuer: 'https://idp.example.test', audience });
    const res = await fetch(audience, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await stranger.mint({ tenant: 'solo' })}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: '{}',
    });
    expect(res.status).toBe(401);
  });
});

describe('the demo (README command one)', () => {
  it('exits 0 and reports every isolation check held', async () => {
    const child = spawn(process.execPath, ['examples/crm-server/src/demo.ts'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: inject('databaseUrl') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(out).toMatch(/(\d+) of \1 isolation checks held\./);
    expect(out).not.toContain('FAIL');
    expect(code).toBe(0);
  }, 180_000);
});
