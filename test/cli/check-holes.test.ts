/** `tenantscope check` against a plain-SDK server with deliberate holes: each hole is reported. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckReport } from '@tenantscope/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKeys, runCli, writeJson } from './helpers.ts';
import { HOLEY_TENANTS, type HoleyServer, startHoleyServer } from './holey-server.ts';

const ISSUER = 'https://idp.holey.test';
let dir: string;
let server: HoleyServer;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let config: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tscheck-holey-'));
  keys = await makeKeys(dir);
  server = await startHoleyServer({ jwks: keys.jwks, issuer: ISSUER, auditDir: dir });
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    check: {
      url: server.url,
      auth: { signingKey: keys.privateKey, issuer: ISSUER },
      tenants: { acme: { tools: HOLEY_TENANTS.acme }, globex: { tools: HOLEY_TENANTS.globex } },
      audit: { jsonlDir: dir },
      auditWaitMs: 1000,
    },
  });
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The holes the server has, by check id (cross-subject is a warning: not every server binds subjects). */
const HOLES = [
  'tokens.expired',
  'tokens.lifetime-over-cap',
  'tools.visible.acme',
  'tools.visible.globex',
  'tools.foreign-like-unknown.acme',
  'tools.foreign-like-unknown.globex',
  'tools.tenant-argument.acme',
  'tools.tenant-argument.globex',
  'sessions.cross-tenant',
  'audit.streams',
];

describe('tenantscope check against a server with holes', () => {
  it('reports every hole, passes what the server gets right, exits 1; JUnit and JSON agree', async () => {
    const junit = join(dir, 'junit.xml');
    const run = await runCli(['check', '--config', config, '--json', '--junit', junit]);
    expect(run.code, run.stderr).toBe(1);
    const report = JSON.parse(run.stdout) as CheckReport;
    const failed = report.results.filter((r) => r.status === 'fail').map((r) => r.id);
    expect(failed.sort()).toEqual([...HOLES].sort());
    expect(report.results.find((r) => r.id === 'sessions.cross-subject')?.status).toBe('warn');
    const passed = report.results.filter((r) => r.status === 'pass').map((r) => r.id);
    expect(passed).toEqual(
      expect.arrayContaining([
        'tokens.missing',
        'tokens.wrong-signature',
        'tokens.alg-none',
        'tokens.hs-rs-confusion',
        'tokens.nbf-future',
        'tokens.wrong-audience',
        'tokens.wrong-issuer',
        'tokens.forged-allowed-tools',
        'tokens.forged-tenant',
      ]),
    );
    expect(report.results.filter((r) => r.status === 'skip')).toEqual([]);
    expect(report.ok).toBe(false);
    // the details name what leaked
    const detail = (id: string) => report.results.find((r) => r.id === id)?.detail ?? '';
    expect(detail('tools.visible.acme')).toContain('globex_report');
    expect(detail('tools.tenant-argument.acme')).toContain("globex's id");
    expect(detail('audit.streams')).toContain('0 in its stream');
    // no bearer token in the evidence
    expect(run.stdout).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
    const xml = await readFile(junit, 'utf8');
    expect(xml).toContain(`failures="${HOLES.length}"`);
    for (const id of HOLES) expect(xml).toMatch(new RegExp(`name="${id.replace(/\./g, '\\.')}"[^>]*>\\s*<failure`));
  });

  it('the human table marks each hole FAIL', async () => {
    const run = await runCli(['check', '--config', config, '--only', 'tokens.expired,tools.visible']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/FAIL\s+tokens\.expired/);
    expect(run.stdout).toMatch(/FAIL\s+tools\.visible\.acme/);
    expect(run.stdout).toContain('0 passed, 3 failed');
  });

  it('--strict: one bad answer fails the run and stops it there', async () => {
    const run = await runCli(['check', '--config', config, '--strict', '--json']);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as CheckReport;
    expect(report.results.at(-1)?.id).toBe('tokens.expired');
    expect(report.results.filter((r) => r.status !== 'pass').length).toBe(1);
  });

  it('with bearer tokens only (no key): the tamper checks run, the minting ones skip and say why', async () => {
    const mint = async (tenant: string) => {
      const { SignJWT, importJWK } = await import('jose');
      const jwk = JSON.parse(await readFile(keys.privateKey, 'utf8'));
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ tenant_id: tenant, sub: `given-${tenant}` })
        .setProtectedHeader({ alg: 'ES256', kid: 'check-key' })
        .setIssuer(ISSUER)
        .setAudience(server.url)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(await importJWK(jwk, 'ES256'));
    };
    const acme = await mint('acme');
    const run = await runCli(
      [
        'check',
        server.url,
        '--token',
        `acme=${acme}`,
        '--token-command',
        'globex=printf %s "$GLOBEX_TOKEN"',
        '--expect',
        'acme=whoami,acme_report',
        '--expect',
        'globex=whoami,globex_report',
        '--only',
        'tokens',
        '--json',
      ],
      { GLOBEX_TOKEN: await mint('globex') },
    );
    const report = JSON.parse(run.stdout) as CheckReport;
    const status = Object.fromEntries(report.results.map((r) => [r.id, r.status]));
    expect(status['tokens.wrong-signature']).toBe('pass');
    expect(status['tokens.alg-none']).toBe('pass');
    expect(status['tokens.forged-allowed-tools']).toBe('pass');
    expect(status['tokens.expired']).toBe('skip');
    expect(report.results.find((r) => r.id === 'tokens.expired')?.detail).toContain('signing key');
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain(acme);
  });
});

describe('tenantscope check against the same holes, served stateless', () => {
  it('detects stateless mode; the session hole shows as another tenant seeing foreign tools; audit attributed by subject', async () => {
    const sdir = await mkdtemp(join(tmpdir(), 'tscheck-stateless-'));
    const stateless = await startHoleyServer({ jwks: keys.jwks, issuer: ISSUER, auditDir: sdir, stateless: true });
    try {
      const cfg = await writeJson(join(sdir, 'config.json'), {
        check: {
          url: stateless.url,
          auth: { signingKey: keys.privateKey, issuer: ISSUER },
          tenants: { acme: { tools: HOLEY_TENANTS.acme }, globex: { tools: HOLEY_TENANTS.globex } },
          audit: { jsonlDir: sdir },
          auditWaitMs: 1000,
        },
      });
      const run = await runCli(['check', '--config', cfg, '--only', 'sessions,audit,tools.visible', '--json']);
      expect(run.code).toBe(1);
      const report = JSON.parse(run.stdout) as CheckReport;
      expect(report.mode).toBe('stateless');
      const byId = Object.fromEntries(report.results.map((r) => [r.id, r]));
      expect(byId['sessions.cross-tenant']?.status).toBe('fail');
      expect(byId['sessions.cross-tenant']?.detail).toContain('stateless: globex');
      expect(byId['sessions.cross-tenant']?.detail).toContain('acme_report');
      expect(byId['sessions.cross-subject']?.status).toBe('skip');
      expect(byId['audit.streams']?.status).toBe('fail');
      expect(JSON.stringify(byId['audit.streams']?.evidence)).toContain('"attributedBy":"subject"');
    } finally {
      await stateless.close();
      await rm(sdir, { recursive: true, force: true });
    }
  });
});

describe('tenantscope check: bad input sends nothing', () => {
  it('a bad config names the field, exits 2, and the target sees no request', async () => {
    let requests = 0;
    const probe = createServer((_req, res) => {
      requests++;
      res.end();
    });
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(probe.address() as { port: number }).port}/mcp`;
    try {
      const bad = await writeJson(join(dir, 'bad.json'), {
        check: {
          url,
          tenants: { acme: { tools: 'whoami' }, globex: { tools: ['whoami'], token: 'x', tokenEnv: 'Y' } },
        },
      });
      const run = await runCli(['check', '--config', bad]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('CLI_CONFIG_INVALID');
      expect(run.stderr).toContain('check.tenants.acme.tools');
      expect(run.stderr).toContain('check.tenants.globex');
      const one = await runCli(['check', url, '--token', 'acme=x', '--expect', 'acme=whoami']);
      expect(one.code).toBe(2);
      expect(one.stderr).toContain('at least two tenants');
      expect(requests).toBe(0);
    } finally {
      probe.close();
    }
  });

  it('an unreachable target exits 3', async () => {
    const dead = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const run = await runCli([
      'check',
      `http://127.0.0.1:${dead}/mcp`,
      '--token',
      'acme=a.b.c',
      '--token',
      'globex=a.b.c',
      '--expect',
      'acme=whoami',
      '--expect',
      'globex=whoami',
    ]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('CLI_TARGET_UNREACHABLE');
  });
});
