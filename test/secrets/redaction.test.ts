/**
 * Redaction end to end: a real tenantscope MCP server, the official MCP SDK client, the secrets
 * injector over the resolved Secrets Manager (env, LocalStack or the testkit protocol double).
 * Every sink's output (JSONL audit files, the memory audit sink, every log record) and every
 * result the client saw is grepped for the secret values.
 */
import { randomBytes } from 'node:crypto';
import { defineTool, ToolError } from '@tenantscope/core';
import { secretsInjector, type TenantSecrets } from '@tenantscope/secrets';
import { awsSecretsManager } from '@tenantscope/secrets/aws';
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type SecretsServer, startSecretsServer, text } from './server.ts';

const sm = inject('secretsManager');
const run = `r${randomBytes(4).toString('hex')}`;
const A = `${run}-acme`;
const G = `${run}-globex`;
const KEY_A = `sk_live_acme_${randomBytes(12).toString('hex')}`;
const KEY_G = `sk_live_globex_${randomBytes(12).toString('hex')}`;
const PASSWORD_A = `pw_${randomBytes(10).toString('hex')}`;
const JSON_A = JSON.stringify({ user: 'svc-mailer', password: PASSWORD_A });
const ALL_SECRETS = [KEY_A, KEY_G, PASSWORD_A, JSON_A, Buffer.from(KEY_A).toString('base64')];

const tool = defineTool<{ secrets: TenantSecrets }>();
let stash: TenantSecrets | undefined;
const tools = [
  tool({
    name: 'leak_return',
    description: 'returns its secret (must come back redacted)',
    secrets: ['api_key'],
    handler: async (_a, ctx) => ({ tenant: ctx.tenant.id, key: await ctx.secrets.get('api_key') }),
  }),
  tool({
    name: 'leak_log',
    description: 'logs its secret every way it can',
    secrets: ['api_key'],
    handler: async (_a, ctx) => {
      const key = await ctx.secrets.get('api_key');
      ctx.logger.info(`calling upstream with ${key}`, { key, nested: { header: `Bearer ${key}` } });
      ctx.logger.error('failed', { [key]: 'as a field name' });
      return { ok: true };
    },
  }),
  tool({
    name: 'leak_json_field',
    description: 'returns one field of a JSON secret',
    secrets: ['db_credentials'],
    handler: async (_a, ctx) => {
      const creds = await ctx.secrets.getJson<{ user: string; password: string }>('db_credentials');
      return `connected with password ${creds.password}`;
    },
  }),
  tool({
    name: 'leak_encoded',
    description: 'returns its secret base64- and URL-encoded',
    secrets: ['api_key'],
    handler: async (_a, ctx) => {
      const key = await ctx.secrets.get('api_key');
      return {
        basic: Buffer.from(key).toString('base64'),
        url: `https://api.example/?key=${encodeURIComponent(`${key}/x`)}`,
      };
    },
  }),
  tool({
    name: 'leak_error',
    description: 'throws an error carrying its secret',
    secrets: ['api_key'],
    handler: async (_a, ctx) => {
      const key = await ctx.secrets.get('api_key');
      throw new ToolError(`upstream said: bad key ${key}`, { code: 'UPSTREAM' });
    },
  }),
  tool({
    name: 'read_undeclared',
    description: 'reads a secret it did not declare',
    secrets: ['api_key'],
    handler: async (_a, ctx) => ctx.secrets.get('db_credentials'),
  }),
  tool({
    name: 'read_foreign',
    description: "reads another tenant's path",
    input: {},
    secrets: ['api_key'],
    handler: async (_a, ctx) => ctx.secrets.get(`../${G}/api_key`),
  }),
  tool({
    name: 'stash',
    description: 'keeps ctx.secrets past the call',
    secrets: ['api_key'],
    handler: (_a, ctx) => {
      stash = ctx.secrets;
      return 'stashed';
    },
  }),
  tool({
    name: 'use_stash',
    description: 'reads through a ctx.secrets kept from an earlier call',
    handler: async () => {
      if (!stash) return 'nothing stashed';
      return { leaked: await stash.get('api_key') };
    },
  }),
];

let server: SecretsServer;
let cleanup: (() => Promise<void>) | undefined;
const seen: string[] = [];

afterAll(async () => {
  await cleanup?.();
});

beforeAll(async () => {
  const provider = awsSecretsManager({
    clientConfig: {
      endpoint: sm.endpoint,
      region: sm.region,
      credentials: { accessKeyId: sm.accessKeyId, secretAccessKey: sm.secretAccessKey },
    },
  });
  const injector = secretsInjector({ provider });
  const seeder = await createTestIssuer();
  const a = await seeder.tenant(A);
  const g = await seeder.tenant(G);
  await injector.unscopedAdmin(a).put('api_key', KEY_A);
  await injector.unscopedAdmin(a).put('db_credentials', JSON_A);
  await injector.unscopedAdmin(g).put('api_key', KEY_G);
  const names = tools.map((t) => t.name);
  server = await startSecretsServer({
    tenants: { [A]: { tools: names }, [G]: { tools: names } },
    providers: { secrets: injector.provider() },
    tools,
  });
  cleanup = async () => {
    await server.close();
    await Promise.allSettled([injector.deleteTenant(a), injector.deleteTenant(g)]);
    provider.unscopedClient.destroy();
  };
});

async function callAs(tenant: string, name: string) {
  const c = await server.connect(tenant);
  const r = await c.callTool({ name, arguments: {} });
  const t = `${text(r)}\n${JSON.stringify(r)}`;
  seen.push(t);
  return { r, t };
}

describe(`redaction through a real MCP server (Secrets Manager: ${sm.source})`, () => {
  it('a returned secret is redacted before it leaves the server, and the redaction is audited', async () => {
    for (const [tenant, key] of [
      [A, KEY_A],
      [G, KEY_G],
    ] as const) {
      const { r, t } = await callAs(tenant, 'leak_return');
      expect(r.isError).toBeFalsy();
      expect(t).not.toContain(key);
      expect(t).toContain('[REDACTED]');
      expect(JSON.parse(text(r))).toEqual({ tenant, key: '[REDACTED]' });
    }
    const redacted = server.memory.events.filter((e) => e.event_type === 'secret_redacted');
    expect(redacted.map((e) => [e.tenant_id, e.tool_name]).sort()).toEqual(
      [
        [A, 'leak_return'],
        [G, 'leak_return'],
      ].sort(),
    );
  });

  it('a logged secret is redacted in every log record', async () => {
    const before = server.logs.length;
    const { r } = await callAs(A, 'leak_log');
    expect(r.isError).toBeFalsy();
    const records = server.logs.slice(before);
    expect(records.length).toBe(2);
    const dump = JSON.stringify(records);
    expect(dump).not.toContain(KEY_A);
    expect(dump).toContain('calling upstream with [REDACTED]');
    expect(dump).toContain('Bearer [REDACTED]');
  });

  it('a field of a JSON secret is redacted too', async () => {
    const { t } = await callAs(A, 'leak_json_field');
    expect(t).not.toContain(PASSWORD_A);
    expect(t).toContain('connected with password [REDACTED]');
  });

  it('base64 and URL-encoded forms of the secret are redacted too', async () => {
    const { r, t } = await callAs(A, 'leak_encoded');
    expect(r.isError).toBeFalsy();
    expect(t).not.toContain(Buffer.from(KEY_A).toString('base64'));
    expect(JSON.parse(text(r)).basic).toBe('[REDACTED]');
    expect(JSON.parse(text(r)).url).not.toContain(KEY_A);
  });

  it('an error message carrying the secret is redacted', async () => {
    const { r, t } = await callAs(A, 'leak_error');
    expect(r.isError).toBe(true);
    expect(t).toContain('UPSTREAM');
    expect(t).not.toContain(KEY_A);
  });

  it('undeclared and foreign names are refused with typed errors', async () => {
    const u = await callAs(A, 'read_undeclared');
    expect(u.r.isError).toBe(true);
    expect(u.t).toContain('SECRET_NOT_DECLARED');
    const f = await callAs(A, 'read_foreign');
    expect(f.r.isError).toBe(true);
    expect(f.t).toContain('SECRET_NAME_INVALID');
    expect(f.t).not.toContain(G);
  });

  it('a ctx.secrets kept past its call cannot read (nothing left to redact with)', async () => {
    await callAs(A, 'stash');
    const { r, t } = await callAs(A, 'use_stash');
    expect(r.isError).toBe(true);
    expect(t).toContain('SECRET_CONTEXT_CLOSED');
  });

  it('no secret value appears in any sink or any result (grep everything)', async () => {
    const everything = `${await server.allSinkOutput()}\n${seen.join('\n')}`;
    expect(everything.length).toBeGreaterThan(1000); // the sinks really captured the calls above
    expect(server.memory.events.some((e) => e.event_type === 'tool_call')).toBe(true);
    for (const s of ALL_SECRETS) expect(everything.includes(s), 'a secret value leaked into a sink').toBe(false);
  });
});
