/**
 * The S3 side of `tenantscope tenant export` and `subject export|erase`, through the real bin, on the
 * run's S3 server (Ceph RGW in CI): objects fetched several at a time give the same export as one
 * at a time; one object that cannot be read fails the export naming its key, with no manifest; a
 * subject found by a metadata field is exactly that subject's objects in that tenant.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteBucketPolicyCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { installTenantScope, pg, tenantTableSql } from '@tenantscope/postgres';
import { createTestBucket, deleteTestBucket, s3Client } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { auditEvents, runCli, writeJson, writeSigningKey } from './helpers.ts';

const SLOW = 300_000;
const FIELD = 'subject-id';
let dir: string;
let db: ScratchDatabase;
let s3: S3Client;
let bucket: string;
let publicKey: string;
/** Configs: objects fetched one at a time, 8 at a time; subjects by metadata. */
let serial: string;
let parallel: string;
let byMetadata: string;

/** acme's objects: sizes from 0 bytes to 600 KB in no order, so parallel GETs finish out of order. */
const FILLER = Array.from({ length: 36 }, (_, i) => ({
  key: `docs/${String(i).padStart(2, '0')}-file.bin`,
  size: [0, 600_000, 10, 150_000, 3, 40_000][i % 6] as number,
}));
/** Objects carrying (or not) the subject metadata. `alice` has two in acme; globex has one with the same value. */
const TAGGED: { tenant: string; key: string; meta?: Record<string, string> }[] = [
  { tenant: 'acme', key: 'inbox/alice-1.txt', meta: { [FIELD]: 'alice' } },
  { tenant: 'acme', key: 'scans/big scan.pdf', meta: { [FIELD]: 'alice', kind: 'scan' } },
  { tenant: 'acme', key: 'inbox/bob-1.txt', meta: { [FIELD]: 'bob' } },
  { tenant: 'acme', key: 'inbox/alice2-1.txt', meta: { [FIELD]: 'alice2' } },
  { tenant: 'acme', key: 'inbox/owner-alice.txt', meta: { owner: 'alice' } },
  { tenant: 'acme', key: 'inbox/untagged.txt' },
  { tenant: 'globex', key: 'inbox/alice-1.txt', meta: { [FIELD]: 'alice' } },
  { tenant: 'globex', key: 'inbox/carol.txt', meta: { [FIELD]: 'carol' } },
];

function body(key: string, size: number): Buffer {
  const seed = createHash('sha256').update(key).digest();
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += seed.length) seed.copy(b, i);
  return b;
}

/** key -> sha256 of every object under a prefix (raw, unscoped client). */
async function objects(prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key as string }));
      const bytes = await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      out[(o.Key as string).slice(prefix.length)] = createHash('sha256').update(bytes).digest('hex');
    }
    token = page.NextContinuationToken;
  } while (token);
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsdsar-s3-'));
  db = await createScratchDatabase(inject('databaseUrl'), 'dsars3');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
  await installTenantScope(owner, { appRole: db.appRole });
  await owner.query(
    'CREATE TABLE customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, name text)',
  );
  await owner.query(tenantTableSql({ table: 'customers', idColumn: 'id', grantTo: db.appRole }));
  await owner.end();
  const conn = inject('s3');
  s3 = s3Client(conn);
  bucket = await createTestBucket(s3, 'dsars3');
  const puts = [
    ...FILLER.map((f) => ({ Key: `tenants/acme/${f.key}`, Body: body(f.key, f.size) })),
    ...FILLER.slice(0, 4).map((f) => ({ Key: `tenants/globex/${f.key}`, Body: body(`globex ${f.key}`, f.size) })),
    ...TAGGED.map((t) => ({
      Key: `tenants/${t.tenant}/${t.key}`,
      Body: body(`${t.tenant} ${t.key}`, 1000),
      Metadata: t.meta,
    })),
  ];
  for (let i = 0; i < puts.length; i += 8) {
    await Promise.all(puts.slice(i, i + 8).map((p) => s3.send(new PutObjectCommand({ Bucket: bucket, ...p }))));
  }
  process.env.DSAR_S3_TEST_KEY = conn.accessKeyId;
  process.env.DSAR_S3_TEST_SECRET = conn.secretAccessKey;
  process.env.TENANTSCOPE_SUBJECT_HASH_KEY = 'test-subject-hash-key-of-at-least-32-characters';
  publicKey = (await writeSigningKey(dir)).publicKey;
  const dsar = (s3Extra: Record<string, unknown>) => ({
    dsar: {
      tenants: ['acme', 'globex'],
      postgres: { url: db.ownerUrl, pooler: TEST_POOLER, tables: [{ name: 'customers', subjectColumn: 'subject_id' }] },
      s3: {
        endpoint: conn.endpoint,
        region: conn.region,
        bucket,
        accessKeyIdEnv: 'DSAR_S3_TEST_KEY',
        secretAccessKeyEnv: 'DSAR_S3_TEST_SECRET',
        ...s3Extra,
      },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'dpo@example.test',
    },
  });
  serial = await writeJson(join(dir, 'serial.json'), dsar({ concurrency: 1 }));
  parallel = await writeJson(join(dir, 'parallel.json'), dsar({ concurrency: 8 }));
  byMetadata = await writeJson(join(dir, 'metadata.json'), dsar({ concurrency: 4, subject: { metadata: FIELD } }));
});

afterAll(async () => {
  await s3?.send(new DeleteBucketPolicyCommand({ Bucket: bucket })).catch(() => undefined);
  await deleteTestBucket(s3, bucket);
  s3?.destroy();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('tenant export: S3 objects several at a time', () => {
  it(
    'gives the same files, index and counts as one at a time, in listing order, and verifies',
    async () => {
      const runs: { manifest: { counts: unknown; files: Record<string, unknown> }; index: string }[] = [];
      for (const [name, cfg] of [
        ['one', serial],
        ['eight', parallel],
      ] as const) {
        const out = join(dir, `export-${name}`);
        const r = await runCli(['tenant', 'export', 'acme', '--out', out, '--config', cfg, '--json']);
        expect(r.code, r.stderr).toBe(0);
        runs.push({ manifest: JSON.parse(r.stdout), index: await readFile(join(out, 's3', 'objects.ndjson'), 'utf8') });
      }
      const [one, eight] = runs as [(typeof runs)[0], (typeof runs)[0]];
      expect((await runCli(['verify-export', join(dir, 'export-eight'), '--public-key', publicKey])).code).toBe(0);
      // The same S3 part (the audit part differs: each export adds an event to the stream).
      const s3Part = (m: (typeof runs)[0]['manifest']) => ({
        counts: (m.counts as Record<string, unknown>).s3,
        files: Object.entries(m.files).filter(([name]) => name.startsWith('s3/')),
      });
      expect(s3Part(eight.manifest)).toEqual(s3Part(one.manifest));
      expect(eight.index).toBe(one.index);
      // Every acme object, numbered in listing order, each file holding that object's bytes; no globex key.
      const want = await objects('tenants/acme/');
      const lines = eight.index
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; file: string });
      expect(lines.map((l) => l.key)).toEqual(Object.keys(want));
      expect(lines.map((l) => l.file.slice(0, 19))).toEqual(
        lines.map((_, i) => `s3/objects/${String(i + 1).padStart(8, '0')}`),
      );
      const out = join(dir, 'export-eight');
      for (const l of lines) {
        expect(
          createHash('sha256')
            .update(await readFile(join(out, l.file)))
            .digest('hex'),
          l.key,
        ).toBe(want[l.key]);
      }
      expect(eight.manifest.counts).toMatchObject({ s3: { objects: FILLER.length + 6 } });
    },
    SLOW,
  );

  it(
    'one object that cannot be read fails the export (and a subject export) naming its key; no manifest, no tar',
    async (ctx) => {
      const denied = 'docs/07-file.bin';
      await s3.send(
        new PutBucketPolicyCommand({
          Bucket: bucket,
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Deny',
                Principal: '*',
                Action: 's3:GetObject',
                Resource: `arn:aws:s3:::${bucket}/tenants/acme/${denied}`,
              },
            ],
          }),
        }),
      );
      try {
        const enforced = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `tenants/acme/${denied}` })).then(
          () => false,
          () => true,
        );
        if (!enforced) {
          console.warn(`dsar-s3: skipped: ${inject('s3').endpoint} does not enforce bucket policies (s3rver?)`);
          ctx.skip();
        }
        const out = join(dir, 'export-denied');
        const r = await runCli(['tenant', 'export', 'acme', '--out', out, '--config', parallel]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toContain('CLI_STORE_FAILED');
        expect(r.stderr).toContain(`object "${denied}"`);
        expect(await readdir(out)).not.toContain('manifest.json');

        const tar = join(dir, 'export-denied.tar');
        const t = await runCli(['tenant', 'export', 'acme', '--out', tar, '--config', parallel]);
        expect(t.code, t.stderr).toBe(3);
        expect(t.stderr).toContain(`object "${denied}"`);
        expect((await readdir(dir)).filter((f) => f.endsWith('.tar') || f.endsWith('.tenantscope-export'))).toEqual([]);

        // Subjects found by metadata: every object is read with HEAD, which the policy denies too.
        const sub = join(dir, 'subject-denied');
        const s = await runCli(['subject', 'export', 'acme', 'bob', '--out', sub, '--config', byMetadata]);
        expect(s.code, s.stderr).toBe(3);
        expect(s.stderr).toContain(`object "${denied}"`);
        expect(await readdir(sub).catch(() => [])).not.toContain('manifest.json');
      } finally {
        await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
      }
    },
    SLOW,
  );
});

describe('subject export|erase: S3 objects found by a metadata field', () => {
  it(
    "exports and deletes exactly the subject's objects in that tenant; untagged, other-field, neighbour-value and other tenants' objects untouched",
    async () => {
      const before = { acme: await objects('tenants/acme/'), globex: await objects('tenants/globex/') };
      const alice = ['inbox/alice-1.txt', 'scans/big scan.pdf'];

      const out = join(dir, 'subject-alice');
      const ex = await runCli(['subject', 'export', 'acme', 'alice', '--out', out, '--config', byMetadata, '--json']);
      expect(ex.code, ex.stderr).toBe(0);
      expect(JSON.parse(ex.stdout).counts).toEqual({ postgres: { customers: 0 }, s3: { objects: 2 } });
      const index = (await readFile(join(out, 's3', 'objects.ndjson'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; file: string; metadata: Record<string, string> });
      expect(index.map((l) => l.key)).toEqual(alice);
      for (const l of index) {
        expect(l.metadata[FIELD]).toBe('alice');
        expect(
          createHash('sha256')
            .update(await readFile(join(out, l.file)))
            .digest('hex'),
        ).toBe(before.acme[l.key]);
      }
      expect((await runCli(['verify-export', out, '--public-key', publicKey])).code).toBe(0);

      // carol has an object only in globex: for acme she is unknown, nothing written.
      const carol = await runCli([
        'subject',
        'export',
        'acme',
        'carol',
        '--out',
        join(dir, 'carol'),
        '--config',
        byMetadata,
      ]);
      expect(carol.code).toBe(2);
      expect(carol.stderr).toContain('CLI_UNKNOWN_TENANT');

      const er = await runCli(['subject', 'erase', 'acme', 'alice', '--config', byMetadata, '--json']);
      expect(er.code, er.stderr).toBe(0);
      expect(JSON.parse(er.stdout).stores).toEqual({ s3: { deleted: 2 } });
      const rest = Object.fromEntries(Object.entries(before.acme).filter(([k]) => !alice.includes(k)));
      expect(await objects('tenants/acme/')).toEqual(rest);
      expect(await objects('tenants/globex/')).toEqual(before.globex);

      // Nothing of alice left in acme: a rerun is an unknown subject and changes nothing.
      expect((await runCli(['subject', 'erase', 'acme', 'alice', '--config', byMetadata])).code).toBe(2);
      expect(await objects('tenants/acme/')).toEqual(rest);
      const events = await auditEvents(join(dir, 'audit'), 'acme', (e) => e.event_type === 'dsar_subject_erase');
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ details: { 's3.objects': 2 } });
      expect(JSON.stringify(events)).not.toContain('alice');
    },
    SLOW,
  );
});
