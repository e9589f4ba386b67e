import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { effectiveTools, loadTenantDirectory, StaticTenantDirectory, toolMatches } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import { describe, expect, it } from 'vitest';

describe('tool globs', () => {
  it('matches * as any run and everything else literally', () => {
    expect(toolMatches('query_*', 'query_customers')).toBe(true);
    expect(toolMatches('query_*', 'run_sql')).toBe(false);
    expect(toolMatches('a.b', 'aXb')).toBe(false);
    expect(toolMatches('*', 'anything')).toBe(true);
    expect(toolMatches('whoami', 'whoami2')).toBe(false);
  });
});

describe('effective tools', () => {
  it('is registered ∩ policy ∩ token, and a tool neither grants is denied', async () => {
    const issuer = await createTestIssuer();
    const registered = ['whoami', 'query_customers', 'query_orders', 'run_sql'];
    const policy = { tools: ['whoami', 'query_*'] };
    const noClaim = await issuer.tenant('acme');
    expect([...effectiveTools(registered, policy, noClaim)].sort()).toEqual([
      'query_customers',
      'query_orders',
      'whoami',
    ]);
    const narrow = await issuer.tenant('acme', { tools: ['query_customers', 'run_sql'] });
    expect([...effectiveTools(registered, policy, narrow)]).toEqual(['query_customers']);
    const none = await issuer.tenant('acme', { tools: [] });
    expect(effectiveTools(registered, policy, none).size).toBe(0);
  });
});

describe('tenant directory file', () => {
  it('loads a valid file and refuses bad ids, tools and limits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dir-'));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ tenants: { acme: { tools: ['whoami'], limits: { callsPerMinute: 10 } } } }));
    const d = await loadTenantDirectory(good);
    expect(await d.get('acme')).toEqual({ tools: ['whoami'], limits: { callsPerMinute: 10 } });
    expect(await d.get('globex')).toBeUndefined();
    for (const bad of [
      { tenants: { 'Bad Id': { tools: [] } } },
      { tenants: { acme: { tools: 'whoami' } } },
      { tenants: { acme: { tools: ['x'], limits: { callsPerMinute: -1 } } } },
      { tenants: { acme: { tools: ['x'], limits: { unknown: 1 } } } },
      { nottenants: {} },
    ]) {
      const f = join(dir, 'bad.json');
      await writeFile(f, JSON.stringify(bad));
      await expect(loadTenantDirectory(f)).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    }
    await writeFile(join(dir, 'broken.json'), '{');
    await expect(loadTenantDirectory(join(dir, 'broken.json'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    expect(() => new StaticTenantDirectory({ '': { tools: [] } })).toThrow();
  });
});
