/**
 * The example's file tools (list_files / read_file / write_file over @tenantscope/s3) through a
 * real tenantscope MCP server and the official MCP SDK client, against the resolved S3 server.
 * acme must not reach globex's file by any key it can type, nor page with globex's cursor, and
 * every refusal is audited in acme's own stream.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StartedPlugin } from '../../examples/crm-server/src/plugin.ts';
import { FOREIGN_KEY_ATTEMPTS, plugin, SEED_FILES } from '../../examples/crm-server/src/plugins/s3.ts';
import { type Harness, startHarness, text } from '../e2e/harness.ts';

const conn = inject('s3');
let files: StartedPlugin;
let h: Harness;
let acme: Client;
let globex: Client;

beforeAll(async () => {
  files = await plugin.start({
    S3_ENDPOINT: conn.endpoint,
    S3_REGION: conn.region,
    S3_ACCESS_KEY_ID: conn.accessKeyId,
    S3_SECRET_ACCESS_KEY: conn.secretAccessKey,
    S3_SERVER_NAME: conn.server,
  });
  h = await startHarness({
    tenants: {
      acme: { tools: ['list_files', 'read_file', 'write_file'] },
      globex: { tools: ['list_files', 'read_file', 'write_file'] },
      initech: { tools: ['list_files', 'read_file'] },
    },
    scope: { providers: files.providers } as never,
  });
  for (const t of files.tools) h.scope.tool(t as never);
  acme = await h.connect(await h.token('acme'));
  globex = await h.connect(await h.token('globex'));
});

afterAll(async () => {
  await acme?.close();
  await globex?.close();
  await h?.close();
  await files?.stop();
});

const call = async (c: Client, name: string, args: Record<string, unknown>) => {
  const r = await c.callTool({ name, arguments: args });
  return { isError: r.isError === true, text: text(r) };
};

describe(`file tools over MCP (${conn.server})`, () => {
  it('each tenant lists only its own seeded files, with relative keys', async () => {
    const a = JSON.parse((await call(acme, 'list_files', {})).text).files.map((f: { key: string }) => f.key);
    const g = JSON.parse((await call(globex, 'list_files', {})).text).files.map((f: { key: string }) => f.key);
    expect(a.sort()).toEqual(Object.keys(SEED_FILES.acme ?? {}).sort());
    expect(g.sort()).toEqual(Object.keys(SEED_FILES.globex ?? {}).sort());
  });

  it("acme cannot read globex's file by any key it can type", async () => {
    const secret = SEED_FILES.globex?.['secret/merger-plan.txt'] as string;
    expect((await call(globex, 'read_file', { key: 'secret/merger-plan.txt' })).text).toContain(secret);
    for (const key of FOREIGN_KEY_ATTEMPTS) {
      const r = await call(acme, 'read_file', { key });
      expect(r.isError, JSON.stringify(key)).toBe(true);
      expect(r.text).not.toContain(secret);
      expect(r.text).toMatch(/S3_KEY_INVALID|S3_NOT_FOUND/);
      expect(r.text).not.toContain('tenants/globex');
    }
  });

  it("acme cannot write into globex's space, and globex's file is unchanged", async () => {
    for (const key of [
      '../globex/secret/merger-plan.txt',
      '%2e%2e/globex/secret/merger-plan.txt',
      '/tenants/globex/x',
    ]) {
      expect((await call(acme, 'write_file', { key, content: 'pwned' })).isError).toBe(true);
    }
    const r = await call(acme, 'write_file', { key: 'secret/merger-plan.txt', content: "acme's own file" });
    expect(r.isError).toBe(false);
    expect((await call(globex, 'read_file', { key: 'secret/merger-plan.txt' })).text).toContain('GLOBEX CONFIDENTIAL');
    expect((await call(acme, 'read_file', { key: 'secret/merger-plan.txt' })).text).toContain("acme's own file");
  });

  it("acme cannot page with globex's cursor", async () => {
    const page = JSON.parse((await call(globex, 'list_files', { limit: 1 })).text);
    expect(page.next_cursor).toBeTruthy();
    const r = await call(acme, 'list_files', { limit: 1, cursor: page.next_cursor });
    expect(r.isError).toBe(true);
    expect(r.text).toContain('S3_TOKEN_INVALID');
    const own = await call(globex, 'list_files', { limit: 1, cursor: page.next_cursor });
    expect(own.isError).toBe(false);
  });

  it("refusals are audited in acme's stream only", async () => {
    const acmeEvents = await h.stream('acme');
    const globexEvents = await h.stream('globex');
    expect(acmeEvents.some((e) => e.reason === 'S3_KEY_INVALID' && e.tool_name === 'read_file')).toBe(true);
    expect(acmeEvents.some((e) => e.reason === 'S3_TOKEN_INVALID')).toBe(true);
    expect(acmeEvents.every((e) => e.tenant_id === 'acme')).toBe(true);
    expect(globexEvents.every((e) => e.tenant_id === 'globex')).toBe(true);
  });
});
