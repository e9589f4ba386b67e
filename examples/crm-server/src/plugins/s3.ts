/**
 * Per-tenant files in the example: `list_files`, `read_file` and `write_file` over
 * `@tenantscope/s3`, plugged in as `ctx.files`. Every key a tool receives is relative to the calling
 * tenant's prefix (`tenants/<id>/`) and goes through the package's one key rule.
 *
 * S3: `S3_ENDPOINT` (+ `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`, `S3_REGION`) when set, e.g. the
 * Ceph RADOS Gateway that `.ci/services.d/10-ceph-rgw.sh` starts; else s3rver, the no-setup
 * in-process fallback (it does not check signatures), so the demo runs with nothing installed.
 */
import { defineTool, ToolError } from '@tenantscope/core';
import { scopedS3, type TenantS3 } from '@tenantscope/s3';
import {
  createTestBucket,
  createTestIssuer,
  deleteTestBucket,
  type ResolvedS3,
  s3Client,
  startS3rver,
} from '@tenantscope/testkit';
import { z } from 'zod';
import type { CrmPlugin, DemoContext } from '../plugin.ts';

/** Files each example tenant starts with. */
export const SEED_FILES: Record<string, Record<string, string>> = {
  acme: {
    'welcome.txt': 'Welcome to acme files.',
    'contracts/2026-q3-renewal.txt': 'acme renews with Initrode for 12 months.',
  },
  globex: {
    'welcome.txt': 'Welcome to globex files.',
    'secret/merger-plan.txt': 'GLOBEX CONFIDENTIAL: acquire Hooli in Q1.',
  },
  initech: {
    'welcome.txt': 'Welcome to initech files.',
    'tps/cover-sheet.txt': 'Remember the new cover sheets.',
  },
};

const MAX_READ_BYTES = 256 * 1024;
const tool = defineTool<{ files: TenantS3 }>();

export const fileTools = [
  tool({
    name: 'list_files',
    description: "Lists the calling tenant's files (keys are relative to the tenant), a page at a time.",
    input: {
      prefix: z.string().max(1024).optional().describe('Only keys starting with this, e.g. "contracts/".'),
      cursor: z.string().max(8192).optional().describe('next_cursor from the previous page.'),
      limit: z.number().int().min(1).max(100).optional(),
    },
    annotations: { readOnlyHint: true },
    handler: async ({ prefix, cursor, limit }, ctx) => {
      const page = await ctx.files.list({ prefix, continuationToken: cursor, limit: limit ?? 50 });
      return {
        files: page.objects.map((o) => ({ key: o.key, size: o.size })),
        next_cursor: page.nextContinuationToken ?? null,
      };
    },
  }),
  tool({
    name: 'read_file',
    description: "Reads one of the calling tenant's files as text.",
    input: { key: z.string().max(2048) },
    annotations: { readOnlyHint: true },
    handler: async ({ key }, ctx) => {
      const head = await ctx.files.head(key);
      if (head.size > MAX_READ_BYTES) throw new ToolError('file too large to read here', { code: 'FILE_TOO_LARGE' });
      return { key, content: await ctx.files.getText(key) };
    },
  }),
  tool({
    name: 'write_file',
    description: "Writes a text file in the calling tenant's space.",
    input: { key: z.string().max(2048), content: z.string().max(MAX_READ_BYTES) },
    handler: async ({ key, content }, ctx) => {
      await ctx.files.put(key, content);
      return { key, bytes: Buffer.byteLength(content) };
    },
  }),
];

/** Every key acme might type to reach globex's merger plan. */
export const FOREIGN_KEY_ATTEMPTS = [
  'secret/merger-plan.txt',
  'globex/secret/merger-plan.txt',
  'tenants/globex/secret/merger-plan.txt',
  '/tenants/globex/secret/merger-plan.txt',
  '../globex/secret/merger-plan.txt',
  '../../tenants/globex/secret/merger-plan.txt',
  './../globex/secret/merger-plan.txt',
  'x/../../globex/secret/merger-plan.txt',
  '..%2fglobex%2fsecret%2fmerger-plan.txt',
  '%2e%2e/globex/secret/merger-plan.txt',
  '%252e%252e/globex/secret/merger-plan.txt',
  '%c0%ae%c0%ae/globex/secret/merger-plan.txt',
  '%u002e%u002e/globex/secret/merger-plan.txt',
  '..\\globex\\secret\\merger-plan.txt',
  '\uff0e\uff0e/globex/secret/merger-plan.txt',
  '\u2025/globex/secret/merger-plan.txt',
  '..\uff0fglobex\uff0fsecret\uff0fmerger-plan.txt',
  '..//globex/secret/merger-plan.txt',
  '..\u0000/globex/secret/merger-plan.txt',
];

async function demo({ call, check, say }: DemoContext, where: string): Promise<void> {
  say('\n  Files (@tenantscope/s3): each tenant has its own prefix in one shared bucket');
  say(`  s3: ${where}`);
  const acmeList = await call('acme', 'list_files', {});
  const globexList = await call('globex', 'list_files', {});
  say(`  acme list_files   -> ${acmeList.text}`);
  say(`  globex list_files -> ${globexList.text}`);
  const acmeKeys = JSON.parse(acmeList.text).files.map((f: { key: string }) => f.key) as string[];
  check(
    'acme lists only its own files',
    acmeKeys.sort().join() ===
      Object.keys(SEED_FILES.acme ?? {})
        .sort()
        .join(),
  );
  check("acme's listing does not show globex's merger plan", !acmeList.text.includes('merger-plan'));

  const own = await call('globex', 'read_file', { key: 'secret/merger-plan.txt' });
  check('globex reads its own merger plan', !own.isError && own.text.includes('GLOBEX CONFIDENTIAL'));

  say(`  acme tries ${FOREIGN_KEY_ATTEMPTS.length} keys for globex's secret/merger-plan.txt:`);
  let leaked = 0;
  let refused = 0;
  for (const key of FOREIGN_KEY_ATTEMPTS) {
    const r = await call('acme', 'read_file', { key });
    const code = /"code"\s*:\s*"([A-Z0-9_]+)"|\b(S3_[A-Z_]+)\b/.exec(r.text);
    if (!r.isError || r.text.includes('GLOBEX CONFIDENTIAL')) leaked++;
    else refused++;
    say(
      `    read_file ${JSON.stringify(key).padEnd(52)} -> ${r.isError ? `refused (${code?.[1] ?? code?.[2] ?? 'error'})` : 'READ!'}`,
    );
  }
  check(
    `acme cannot read globex's file by any of ${FOREIGN_KEY_ATTEMPTS.length} keys it can type`,
    leaked === 0 && refused === FOREIGN_KEY_ATTEMPTS.length,
  );

  const w = await call('acme', 'write_file', {
    key: '../globex/secret/merger-plan.txt',
    content: 'overwritten by acme',
  });
  const still = await call('globex', 'read_file', { key: 'secret/merger-plan.txt' });
  check("acme cannot overwrite globex's file", w.isError && still.text.includes('GLOBEX CONFIDENTIAL'));

  const mine = await call('acme', 'write_file', { key: 'notes/from-demo.txt', content: 'written by acme' });
  const back = await call('acme', 'read_file', { key: 'notes/from-demo.txt' });
  check('acme writes and reads back its own file', !mine.isError && back.text.includes('written by acme'));
  const gsees = await call('globex', 'read_file', { key: 'notes/from-demo.txt' });
  check(
    "globex does not see acme's new file under the same key",
    gsees.isError && !gsees.text.includes('written by acme'),
  );

  const gPage = await call('globex', 'list_files', { limit: 1 });
  const cursor = JSON.parse(gPage.text).next_cursor as string | null;
  if (cursor) {
    const stolen = await call('acme', 'list_files', { limit: 1, cursor });
    say(`  acme list_files with globex's cursor -> ${stolen.text}`);
    check(
      "acme cannot page through globex's files with globex's cursor",
      stolen.isError && stolen.text.includes('S3_TOKEN_INVALID'),
    );
  }
  const iw = await call('initech', 'write_file', { key: 'x.txt', content: 'x' });
  check('initech (read-only files) cannot call write_file', iw.isError);
}

export const plugin: CrmPlugin = {
  name: 's3',
  order: 40,
  async start(env) {
    const server: ResolvedS3 | undefined = env.S3_ENDPOINT ? undefined : await startS3rver();
    const conn = server ?? {
      endpoint: env.S3_ENDPOINT as string,
      region: env.S3_REGION ?? 'us-east-1',
      accessKeyId: env.S3_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY ?? '',
      server: env.S3_SERVER_NAME ?? 's3',
      checksSignatures: true,
    };
    const raw = s3Client(conn);
    const bucket = await createTestBucket(raw, 'crm-files');
    const files = scopedS3(raw, { bucket });
    // Seed through the scoped client, with tenants minted by a local dev issuer.
    const issuer = await createTestIssuer();
    for (const [tenantId, seed] of Object.entries(SEED_FILES)) {
      const scoped = files.forTenant(await issuer.tenant(tenantId));
      for (const [key, content] of Object.entries(seed)) await scoped.put(key, content);
    }
    return {
      providers: { files: files.provider() },
      tools: fileTools,
      demo: (ctx) =>
        demo(ctx, server ? server.describe : `${conn.server} at ${conn.endpoint} (S3_ENDPOINT), bucket ${bucket}`),
      async stop() {
        await deleteTestBucket(raw, bucket);
        raw.destroy();
        await server?.stop();
      },
    };
  },
};
