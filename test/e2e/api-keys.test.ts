/**
 * API keys end to end: `tenantscope keys create` (the real bin, in a child process) writes a key into
 * the example server's state database; the example server (TENANTSCOPE_API_KEYS=1) accepts it as
 * `Authorization: Bearer tsk_…`, takes the tenant and tools from the stored record, and refuses it
 * once `tenantscope keys revoke` ran. Refusals land in the audit trail like a JWT's.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { AuditEvent } from '@tenantscope/core';
import { configFromEnv, type RunningCrmServer, startCrmServer } from '@tenantscope/example-crm-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, resultText } from '../../examples/crm-server/src/client.ts';
import { runCli, writeJson } from '../cli/helpers.ts';
import { INIT, rawPost } from './harness.ts';

process.env.DATABASE_URL ??= inject('databaseUrl');

const SCHEMA = `ts_keys_e2e_${randomBytes(3).toString('hex')}`;
const events: AuditEvent[] = [];
let server: RunningCrmServer;
let config: string;
const clients: Client[] = [];

beforeAll(async () => {
  const env = {
    ...process.env,
    PORT: '0',
    TENANTSCOPE_API_KEYS: '1',
    TENANTSCOPE_PLUGINS: 'core-tools',
    TENANTSCOPE_STATE_SCHEMA: SCHEMA,
  };
  server = await startCrmServer(await configFromEnv(env), {
    env,
    log: () => {},
    audit: {
      write: async (e) => {
        events.push(e);
      },
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'ts-keys-e2e-'));
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    keys: {
      postgres: { url: process.env.DATABASE_URL },
      schema: SCHEMA,
      revocationSchema: SCHEMA,
      tenants: { file: join(import.meta.dirname, '..', '..', 'examples', 'crm-server', 'tenants.json') },
    },
  });
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await server?.close();
});

async function createKey(tenant: string, tools: string): Promise<{ key: string; id: string }> {
  const r = await runCli(['keys', 'create', tenant, '--tools', tools, '--expires', '1d', '--json', '--config', config]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { key: string; id: string };
}

async function mcpStatus(token: string): Promise<{ status: number; code: unknown }> {
  const r = await rawPost(server.url, token, INIT);
  return { status: r.status, code: (r.json as { error?: { data?: { code?: unknown } } }).error?.data?.code };
}

describe('API keys through the example server', () => {
  it('a key made by the CLI calls a tool as its tenant; only its allowed tools exist for it', async () => {
    const { key, id } = await createKey('acme', 'whoami');
    expect(key).toMatch(/^tsk_acme_[A-Za-z0-9_-]{43}$/);
    const client = await connectClient(server.url, key);
    clients.push(client);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(['whoami']); // acme's policy has company_report too: the key does not
    const who = JSON.parse(resultText(await client.callTool({ name: 'whoami', arguments: {} })));
    expect(who).toMatchObject({ tenant_id: 'acme', subject: `api-key:${id}` });
    // A tool of the tenant's policy outside the key's list is answered exactly as an unknown tool.
    const hidden = await client.callTool({ name: 'company_report', arguments: { quarter: 'Q1' } }).catch((e) => e);
    const unknown = await client.callTool({ name: 'no_such_tool', arguments: {} }).catch((e) => e);
    expect(String(hidden).replace('company_report', 'X')).toBe(String(unknown).replace('no_such_tool', 'X'));
  });

  it('the tenant comes from the record: the same key naming another tenant is refused and served to nobody', async () => {
    const { key } = await createKey('globex', 'whoami');
    expect(await mcpStatus(key.replace('tsk_globex_', 'tsk_acme_'))).toEqual({
      status: 401,
      code: 'AUTH_API_KEY_INVALID',
    });
    expect((await mcpStatus(key)).status).toBe(200);
  });

  it('revoked with the CLI: refused at once, and the refusal is audited in the key tenant stream', async () => {
    const { key, id } = await createKey('initech', 'whoami');
    expect((await mcpStatus(key)).status).toBe(200);
    const r = await runCli(['keys', 'revoke', id, '--config', config]);
    expect(r.code).toBe(0);
    events.length = 0;
    expect(await mcpStatus(key)).toEqual({ status: 401, code: 'AUTH_API_KEY_REVOKED' });
    expect(events).toContainEqual(
      expect.objectContaining({
        tenant_id: 'initech',
        subject: `api-key:${id}`,
        event_type: 'auth_failure',
        result_status: 'denied',
        reason: 'AUTH_API_KEY_REVOKED',
      }),
    );
    // A wrong secret proves nothing: audited with no tenant.
    events.length = 0;
    const wrong = key.slice(0, -10) + (key.at(-10) === 'A' ? 'B' : 'A') + key.slice(-9);
    expect(await mcpStatus(wrong)).toEqual({ status: 401, code: 'AUTH_API_KEY_INVALID' });
    await new Promise((res) => setTimeout(res, 200));
    expect(events.filter((e) => e.reason === 'AUTH_API_KEY_INVALID').map((e) => e.tenant_id)).toEqual([null]);
  });

  it('after 10 wrong secrets for one key id, even the right key is refused (AUTH_RATE_LIMITED) for the window', async () => {
    const { key } = await createKey('acme', 'whoami');
    const wrong = key.slice(0, -10) + (key.at(-10) === 'A' ? 'B' : 'A') + key.slice(-9);
    for (let i = 0; i < 10; i++) expect((await mcpStatus(wrong)).code).toBe('AUTH_API_KEY_INVALID');
    // Rate limiting answers 429 with Retry-After (not a 401 challenge); the code says why.
    expect(await mcpStatus(key)).toEqual({ status: 429, code: 'AUTH_RATE_LIMITED' });
  });
});
