/**
 * The example's `send_email` through a real tenantscope MCP server: the mail API must see only
 * the calling tenant's key, on every one of many interleaved calls, and rotation must switch a
 * tenant to its new key with one refresh while the other tenant is untouched.
 */

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type SecretsExample, startSecretsExample } from '../../examples/crm-server/src/plugins/secrets.ts';
import { type SecretsServer, startSecretsServer, text } from './server.ts';

const sm = inject('secretsManager');
let example: SecretsExample;
let server: SecretsServer;

beforeAll(async () => {
  example = await startSecretsExample({
    SECRETS_MANAGER_ENDPOINT: sm.endpoint,
    AWS_REGION: sm.region,
    AWS_ACCESS_KEY_ID: sm.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sm.secretAccessKey,
  });
  server = await startSecretsServer({
    tenants: {
      acme: { tools: ['send_email'] },
      globex: { tools: ['send_email'] },
      initech: { tools: ['whoami'] },
    },
    providers: example.providers ?? {},
    tools: [
      ...example.tools,
      { name: 'whoami', description: 'who', handler: (_a: unknown, ctx: { tenant: { id: string } }) => ctx.tenant.id },
    ],
  });
});

afterAll(async () => {
  await server?.close();
  await example?.stop();
});

describe(`send_email uses each tenant's own mail key (Secrets Manager: ${sm.source})`, () => {
  it("100 interleaved calls from two tenants: the mail API saw only the caller's key", async () => {
    const acme = await server.connect('acme');
    const globex = await server.connect('globex');
    const before = example.mail.requests.length;
    const calls = Array.from({ length: 100 }, (_, i) => {
      const tenant = i % 3 === 0 ? 'globex' : 'acme';
      const client = tenant === 'acme' ? acme : globex;
      return client
        .callTool({ name: 'send_email', arguments: { to: `ops+${i}@${tenant}.example`, subject: `n${i}`, body: 'x' } })
        .then((r) => ({ tenant, r }));
    });
    const results = await Promise.all(calls);
    for (const { tenant, r } of results) {
      expect(r.isError, text(r)).toBeFalsy();
      expect(JSON.parse(text(r)).tenant_id).toBe(tenant);
      expect(text(r)).not.toContain(example.keys.get('acme') as string);
      expect(text(r)).not.toContain(example.keys.get('globex') as string);
    }
    const seen = example.mail.requests.slice(before);
    expect(seen.length).toBe(100);
    for (const req of seen) {
      const tenant = /@(\w+)\.example$/.exec(req.to)?.[1] as string;
      expect(req.key).toBe(example.keys.get(tenant));
      expect(req.owner).toBe(tenant);
      expect(req.status).toBe(202);
    }
    expect(new Set(seen.map((r) => r.key)).size).toBe(2);
  });

  it('rotation: acme refreshes once and uses its new key; globex keeps its own', async () => {
    const acme = await server.connect('acme');
    const globex = await server.connect('globex');
    const globexKey = example.keys.get('globex');
    const oldAcme = example.keys.get('acme');
    await example.rotate('acme');
    const newAcme = example.keys.get('acme');
    expect(newAcme).not.toBe(oldAcme);
    const before = example.mail.requests.length;
    const r = await acme.callTool({ name: 'send_email', arguments: { to: 'a@acme.example', subject: 's', body: 'b' } });
    expect(r.isError, text(r)).toBeFalsy();
    expect(JSON.parse(text(r)).key_refreshed).toBe(true);
    const g = await globex.callTool({
      name: 'send_email',
      arguments: { to: 'g@globex.example', subject: 's', body: 'b' },
    });
    expect(JSON.parse(text(g)).key_refreshed).toBe(false);
    const seen = example.mail.requests.slice(before);
    // acme: the cached old key (refused), then the new one; globex: its own key.
    expect(seen.map((x) => [x.key, x.status])).toEqual([
      [oldAcme, 401],
      [newAcme, 202],
      [globexKey, 202],
    ]);
    // the next acme call uses the refreshed cache entry directly
    const again = await acme.callTool({
      name: 'send_email',
      arguments: { to: 'a@acme.example', subject: 's', body: 'b' },
    });
    expect(JSON.parse(text(again)).key_refreshed).toBe(false);
    expect(example.mail.requests.at(-1)?.key).toBe(newAcme);
  });

  it('a tenant without the grant cannot call send_email; no key appears in any sink', async () => {
    const initech = await server.connect('initech');
    const r = await initech.callTool({
      name: 'send_email',
      arguments: { to: 'x@initech.example', subject: 's', body: 'b' },
    });
    expect(r.isError).toBe(true);
    const everything = await server.allSinkOutput();
    expect(everything).toContain('send_email');
    for (const key of example.mail.requests.map((q) => q.key)) expect(everything.includes(key)).toBe(false);
  });
});
