import { describe, expect, it } from 'vitest';
import { formatJUnit } from './check/output.ts';
import type { CheckReport } from './check/run.ts';
import { parseConfig } from './config.ts';

const tenants = { acme: { tools: ['whoami'] }, globex: { tools: ['whoami'] } };

describe('config', () => {
  it('accepts a minimal check section and fills the defaults', () => {
    const c = parseConfig({ check: { url: 'http://127.0.0.1:3000/mcp', tenants } });
    expect(c.check?.auditCalls).toBe(3);
    expect(c.check?.tenants.acme?.exhaustive).toBe(true);
  });

  it('names every bad field', () => {
    const bad = () =>
      parseConfig({
        check: {
          url: 'not a url',
          tenants: { Acme: { tools: ['whoami'] }, globex: { tools: [], token: 'a', tokenCommand: 'b' } },
          surprise: 1,
        },
      });
    expect(bad).toThrow(/check\.url/);
    expect(bad).toThrow(/check\.tenants\.Acme/);
    expect(bad).toThrow(/check\.tenants\.globex\.tools/);
    expect(bad).toThrow(/at most one of token, tokenEnv, tokenCommand/);
    expect(bad).toThrow(/surprise/);
    try {
      bad();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('CLI_CONFIG_INVALID');
    }
  });

  it('needs two tenants', () => {
    expect(() => parseConfig({ check: { tenants: { acme: { tools: ['whoami'] } } } })).toThrow(/at least two tenants/);
  });
});

describe('JUnit', () => {
  it('escapes markup and control characters from a server answer', () => {
    const report = {
      strict: false,
      startedAt: '2026-01-01T00:00:00.000Z',
      summary: { total: 1, pass: 0, fail: 1, warn: 0, skip: 0 },
      results: [
        {
          id: 'tools.visible.acme',
          group: 'tools',
          title: 't',
          status: 'fail',
          detail: 'sees <b>"x"</b> & \u0001y',
          evidence: [],
          startedAt: '2026-01-01T00:00:00.000Z',
          durationMs: 5,
        },
      ],
    } as unknown as CheckReport;
    const xml = formatJUnit(report);
    expect(xml).toContain('message="sees &lt;b&gt;&quot;x&quot;&lt;/b&gt; &amp; y"');
    expect(xml).toContain('failures="1"');
  });
});

describe('--only', () => {
  it('an id no check has is a usage error, before anything is sent', async () => {
    const { runCheck } = await import('./check/run.ts');
    const cfg = parseConfig({
      check: {
        tenants: { acme: { tools: ['whoami'], token: 'a.b.c' }, globex: { tools: ['whoami'], token: 'a.b.c' } },
      },
    }).check;
    if (!cfg) throw new Error('no check section');
    // port 9 (discard) on loopback: nothing may be contacted before the error
    await expect(runCheck('http://127.0.0.1:9/mcp', cfg, { only: ['tokens.nope'] })).rejects.toMatchObject({
      code: 'CLI_USAGE',
    });
  });
});
