/**
 * `tenantscope tenant export|delete` and `verify-export` through the real bin, in a child process,
 * against a real PostgreSQL (a scratch database with tenantscope installed) and a real hash-chained
 * JSONL audit log. Three tenants with several subjects each; the others are checksummed row by row.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { verifyJsonl } from '@tenantscope/audit';
import { installTenantScope, pg, tenantTableSql } from '@tenantscope/postgres';
import { secretsInjector } from '@tenantscope/secrets';
import { awsSecretsManager } from '@tenantscope/secrets/aws';
import { createTestBucket, createTestIssuer, s3Client } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readTar } from '../../packages/cli/src/dsar/tar.ts';
import { TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { auditEvents, qdrantRest, root, runCli, writeJson, writeSigningKey } from './helpers.ts';

const TABLES = ['invoices', 'customers'];
/** Each case runs the bin several times; a loaded CI machine takes seconds per start. */
const SLOW = 300_000;
let dir: string;
let db: ScratchDatabase;
let su: pg.Client;
let config: string;
let auditDir: string;
let publicKey: string;
let s3: S3Client;
let bucket: string;
const OBJECTS = ['s1/profile.json', 's2/profile.json', 'docs/contract 1.pdf'];

async function seed(tenants: string[]): Promise<void> {
  await su.query(
    `INSERT INTO customers (tenant_id, subject_id, name, email)
     SELECT t, 's' || i, t || '-name-' || i, t || '-' || i || '@example.test' FROM unnest($1::text[]) t, generate_series(1, 5) i`,
    [tenants],
  );
  await su.query(
    `INSERT INTO invoices (tenant_id, subject_id, amount)
     SELECT t, 's' || (i % 5 + 1), i * 10 FROM unnest($1::text[]) t, generate_series(1, 40) i`,
    [tenants],
  );
}

/** md5 over every row of the tenant, per table (the superuser sees every tenant). */
async function checksum(tenant: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const r = await su.query<{ h: string | null; n: string }>(
      `SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) AS h, count(*) AS n FROM ${t} x WHERE tenant_id = $1`,
      [tenant],
    );
    out[t] = `${r.rows[0]?.n}:${r.rows[0]?.h}`;
  }
  out.s3 = await objectsHash(`tenants/${tenant}/`);
  out.qdrant = await pointsHash(tenant);
  out.secrets = await secretNames(tenant);
  return out;
}

let collection: string;
const qdrant = qdrantRest;

/** Every point of a tenant (ids, payloads, vectors), read with raw REST, as a count and a sha256. */
async function pointsHash(tenant: string, exceptSubject?: string): Promise<string> {
  const r = await qdrant('POST', `/collections/${collection}/points/scroll`, {
    filter: {
      must: [{ key: 'tenant_id', match: { value: tenant } }],
      ...(exceptSubject ? { must_not: [{ key: 'subject', match: { value: exceptSubject } }] } : {}),
    },
    limit: 1000,
    with_payload: true,
    with_vector: true,
  });
  const points = ((r.result as { points: { id: number }[] }).points ?? []).sort((a, b) => a.id - b.id);
  return `${points.length}:${createHash('sha256').update(JSON.stringify(points)).digest('hex')}`;
}

let sm: SecretsManagerClient;
/** Per run, so a Secrets Manager shared with other suites never mixes names. */
const SECRETS_PREFIX = `dsarcli-${Date.now().toString(36)}/`;

/** Every secret name of a tenant (raw ListSecrets), as a count and a sha256. */
async function secretNames(tenant: string): Promise<string> {
  const names = await secretList(tenant);
  return `${names.length}:${createHash('sha256').update(names.join('\n')).digest('hex')}`;
}

async function secretList(tenant: string): Promise<string[]> {
  const names: string[] = [];
  let next: string | undefined;
  do {
    const r = await sm.send(
      new ListSecretsCommand({
        Filters: [{ Key: 'name', Values: [`${SECRETS_PREFIX}${tenant}/`] }],
        NextToken: next,
        MaxResults: 100,
      }),
    );
    for (const x of r.SecretList ?? []) if (x.Name?.startsWith(`${SECRETS_PREFIX}${tenant}/`)) names.push(x.Name);
    next = r.NextToken;
  } while (next);
  return names.sort();
}

/** sha256 over every key and body under a prefix, read with the raw (unscoped) client. */
async function objectsHash(prefix: string): Promise<string> {
  const h = createHash('sha256');
  const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const keys = (list.Contents ?? []).map((o) => o.Key as string).sort();
  for (const key of keys) {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    h.update(`${key}\0`).update(
      await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  }
  return `${keys.length}:${h.digest('hex')}`;
}

async function rows(tenant: string): Promise<number> {
  let n = 0;
  n += Number((await objectsHash(`tenants/${tenant}/`)).split(':')[0]);
  n += Number((await pointsHash(tenant)).split(':')[0]);
  n += Number((await secretNames(tenant)).split(':')[0]);
  for (const t of TABLES) {
    n += Number((await su.query(`SELECT count(*) AS n FROM ${t} WHERE tenant_id = $1`, [tenant])).rows[0].n);
  }
  return n;
}

const certificates = (tenant: string) =>
  auditEvents(auditDir, tenant, (e) => e.event_type === 'dsar_deletion_certificate');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsdsar-'));
  auditDir = join(dir, 'audit');
  db = await createScratchDatabase(inject('databaseUrl'), 'dsarcli');
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  await installTenantScope(owner, { appRole: db.appRole });
  await owner.query(`
    CREATE TABLE customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, name text, email text);
    CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, amount int NOT NULL);
  `);
  await owner.query(tenantTableSql({ table: 'customers', idColumn: 'id', grantTo: db.appRole }));
  await owner.query(tenantTableSql({ table: 'invoices', idColumn: 'id', grantTo: db.appRole }));
  await owner.end();
  su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  await seed(['acme', 'globex', 'initech', 'crash1', 'crash2', 'crash3']);
  const conn = inject('s3');
  s3 = s3Client(conn);
  bucket = await createTestBucket(s3, 'dsarcli');
  for (const t of ['acme', 'globex', 'initech', 'crash1', 'crash2', 'crash3']) {
    for (const k of OBJECTS) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `tenants/${t}/${k}`, Body: `${t}:${k}` }));
    }
  }
  collection = `dsarcli_${Date.now().toString(36)}`;
  await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 4, distance: 'Cosine' } });
  await qdrant('PUT', `/collections/${collection}/index?wait=true`, {
    field_name: 'tenant_id',
    field_schema: { type: 'keyword', is_tenant: true },
  });
  const tenants = ['acme', 'globex', 'initech', 'crash1', 'crash2', 'crash3'];
  await qdrant('PUT', `/collections/${collection}/points?wait=true`, {
    points: tenants.flatMap((t, ti) =>
      [1, 2, 3, 4].map((i) => ({
        id: ti * 100 + i,
        vector: [ti + 1, i, 0.5, 1],
        payload: { tenant_id: t, subject: `s${i}`, text: `${t} doc ${i}` },
      })),
    ),
  });
  const smc = inject('secretsManager');
  sm = new SecretsManagerClient({
    endpoint: smc.endpoint,
    region: smc.region,
    credentials: { accessKeyId: smc.accessKeyId, secretAccessKey: smc.secretAccessKey },
  });
  // Seeded the way a server stores them (the provider tags each secret with its tenant).
  const injector = secretsInjector({
    provider: awsSecretsManager({ client: sm }),
    naming: (t, name) => `${SECRETS_PREFIX}${t.id}/${name}`,
    tenantPrefix: (t) => `${SECRETS_PREFIX}${t.id}/`,
  });
  const issuer = await createTestIssuer();
  for (const t of tenants) {
    const admin = injector.unscopedAdmin(await issuer.tenant(t));
    for (const name of ['crm-api-key', 'smtp-password']) await admin.put(name, `${t}-${name}-value`);
  }
  // initech: secrets and an object/point of subject s20, a neighbour of s2 by prefix (never touched by s2's erase).
  const initech = injector.unscopedAdmin(await issuer.tenant('initech'));
  for (const name of ['oauth-s2', 'oauth-s20']) await initech.put(name, `initech-${name}-value`);
  process.env.DSAR_TEST_SM_KEY = smc.accessKeyId;
  process.env.DSAR_TEST_SM_SECRET = smc.secretAccessKey;
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: 'tenants/initech/s20/profile.json', Body: 'initech:s20/profile.json' }),
  );
  await qdrant('PUT', `/collections/${collection}/points?wait=true`, {
    points: [
      { id: 999, vector: [9, 9, 0.5, 1], payload: { tenant_id: 'initech', subject: 's20', text: 'initech s20' } },
    ],
  });
  // Outside every tenant's prefix: never touched.
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tenants/acme-archive/keep.txt', Body: 'not acme' }));
  process.env.TENANTSCOPE_SUBJECT_HASH_KEY = 'test-subject-hash-key-of-at-least-32-characters';
  process.env.DSAR_TEST_S3_KEY = conn.accessKeyId;
  process.env.DSAR_TEST_QDRANT_KEY = inject('qdrantApiKey');
  process.env.DSAR_TEST_S3_SECRET = conn.secretAccessKey;
  publicKey = (await writeSigningKey(dir)).publicKey;
  config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants: ['acme', 'globex', 'initech', 'crash1', 'crash2', 'crash3'],
      postgres: {
        url: db.ownerUrl,
        // 'transaction' in CI's PgBouncer pass (DATABASE_URL is PgBouncer there), else 'none'.
        pooler: TEST_POOLER,
        tables: [
          { name: 'invoices', subjectColumn: 'subject_id', erase: { pseudonymise: { subject_id: 'erased' } } },
          { name: 'customers', subjectColumn: 'subject_id' },
        ],
      },
      s3: {
        endpoint: inject('s3').endpoint,
        region: inject('s3').region,
        bucket,
        accessKeyIdEnv: 'DSAR_TEST_S3_KEY',
        secretAccessKeyEnv: 'DSAR_TEST_S3_SECRET',
        subject: { keyPattern: '{subject}/' },
      },
      qdrant: {
        url: inject('qdrantUrl'),
        collection,
        ...(inject('qdrantApiKey') ? { apiKeyEnv: 'DSAR_TEST_QDRANT_KEY' } : {}),
        subjectKey: 'subject',
      },
      secrets: {
        provider: 'aws-secrets-manager',
        endpoint: inject('secretsManager').endpoint,
        region: inject('secretsManager').region,
        accessKeyIdEnv: 'DSAR_TEST_SM_KEY',
        secretAccessKeyEnv: 'DSAR_TEST_SM_SECRET',
        prefix: `${SECRETS_PREFIX}{tenant}/`,
        subjectNames: ['oauth-{subject}'],
      },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'dpo@example.test',
    },
  });
});
afterAll(async () => {
  await su?.end();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('tenantscope tenant export / delete (Postgres + audit)', () => {
  it(
    'a bad config names the field, exits 2 and touches nothing',
    async () => {
      const bad = await writeJson(join(dir, 'bad.json'), {
        dsar: { tenants: ['acme'], postgres: { url: db.ownerUrl, tables: [{ name: 'x; drop' }] } },
      });
      const before = await rows('acme');
      const r = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', bad]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('CLI_CONFIG_INVALID');
      expect(r.stderr).toContain('dsar.postgres.tables.0.name');
      expect(r.stderr).toContain('dsar.audit');
      expect(await rows('acme')).toBe(before);
    },
    SLOW,
  );

  it(
    'a role that bypasses row-level security is refused before anything is touched',
    async () => {
      const dsar = JSON.parse(await readFile(config, 'utf8')).dsar;
      const superCfg = await writeJson(join(dir, 'superuser.json'), {
        dsar: { ...dsar, postgres: { url: db.superUrl, tables: [{ name: 'customers' }] } },
      });
      const before = await checksum('globex');
      const r = await runCli(['tenant', 'delete', 'globex', '--confirm', 'globex', '--config', superCfg]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('bypasses row-level security');
      expect(await checksum('globex')).toEqual(before);
    },
    SLOW,
  );

  it(
    'an unknown tenant exits 2 and touches nothing',
    async () => {
      const r = await runCli(['tenant', 'delete', 'umbrella', '--confirm', 'umbrella', '--config', config]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('CLI_UNKNOWN_TENANT');
    },
    SLOW,
  );

  it(
    'a dry run and a wrong --confirm delete nothing',
    async () => {
      const before = await checksum('acme');
      const dry = await runCli(['tenant', 'delete', 'acme', '--config', config, '--json']);
      expect(dry.code, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({
        dryRun: true,
        counts: {
          postgres: { invoices: 40, customers: 5 },
          s3: { objects: 3 },
          qdrant: { points: 4 },
          secrets: { names: 2 },
        },
      });
      const wrong = await runCli(['tenant', 'delete', 'acme', '--confirm', 'globex', '--config', config]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain('--confirm does not match');
      expect(await checksum('acme')).toEqual(before);
      expect(await certificates('acme')).toHaveLength(0);
    },
    SLOW,
  );

  it(
    'exports acme (signed, verifiable), deletes it everywhere, leaves the others byte-identical',
    async () => {
      const others = { globex: await checksum('globex'), initech: await checksum('initech') };
      const out = join(dir, 'export-acme');
      const ex = await runCli(['tenant', 'export', 'acme', '--out', out, '--config', config, '--json']);
      expect(ex.code, ex.stderr).toBe(0);
      const manifest = JSON.parse(ex.stdout);
      expect(manifest.counts.postgres).toEqual({ invoices: 40, customers: 5 });
      expect(manifest.counts.s3).toEqual({ objects: 3 });
      expect(manifest.counts.qdrant).toEqual({ points: 4 });
      expect(manifest.counts.secrets).toEqual({ names: 2 });
      const secretFile = await readFile(join(out, 'secrets', 'names.ndjson'), 'utf8');
      expect(secretFile).toBe('{"name":"crm-api-key"}\n{"name":"smtp-password"}\n');
      expect(secretFile).not.toContain('value');
      const points = (await readFile(join(out, 'qdrant', 'points.ndjson'), 'utf8')).trim().split('\n');
      expect(points.map((l) => JSON.parse(l).payload.tenant_id)).toEqual(['acme', 'acme', 'acme', 'acme']);
      const index = (await readFile(join(out, 's3', 'objects.ndjson'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(index.map((o) => o.key).sort()).toEqual([...OBJECTS].sort());
      for (const o of index) expect(await readFile(join(out, o.file), 'utf8')).toBe(`acme:${o.key}`);
      const lines = (await readFile(join(out, 'postgres', 'customers.ndjson'), 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(5);
      expect(new Set(lines.map((l) => JSON.parse(l).tenant_id))).toEqual(new Set(['acme']));
      expect(JSON.parse(await readFile(join(out, 'audit', 'verification.json'), 'utf8')).ok).toBe(true);

      const ok = await runCli(['verify-export', out, '--public-key', publicKey]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);

      const del = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config, '--json']);
      expect(del.code, del.stderr).toBe(0);
      const outcome = JSON.parse(del.stdout);
      expect(outcome.certificateWritten).toBe(true);
      expect(outcome.certificate.stores.postgres).toEqual({
        invoices: { before: 40, after: 0 },
        customers: { before: 5, after: 0 },
      });
      expect(outcome.certificate.stores.s3).toEqual({ objects: { before: 3, after: 0 } });
      expect(outcome.certificate.stores.qdrant).toEqual({ points: { before: 4, after: 0 } });
      expect(outcome.certificate.stores.secrets).toEqual({ names: { before: 2, after: 0 } });
      expect(await rows('acme')).toBe(0);
      expect({ globex: await checksum('globex'), initech: await checksum('initech') }).toEqual(others);
      expect(await objectsHash('tenants/acme-archive/')).toMatch(/^1:/);
      const certs = await certificates('acme');
      expect(certs).toHaveLength(1);
      expect(certs[0]).toMatchObject({ details: { 'postgres.invoices.before': 40, 'postgres.invoices.after': 0 } });

      // Idempotent: a rerun exits 0, every store still 0, and no second certificate.
      const again = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).certificateWritten).toBe(false);
      expect(await certificates('acme')).toHaveLength(1);
      const chain = await verifyJsonl({ dir: auditDir, anchors: { record: async () => {}, list: async () => [] } });
      expect(chain.ok).toBe(true);
    },
    SLOW,
  );

  it(
    'a tampered, extended or re-signed export fails verify-export',
    async () => {
      const make = async (name: string) => {
        const out = join(dir, name);
        const r = await runCli(['tenant', 'export', 'globex', '--out', out, '--config', config]);
        expect(r.code, r.stderr).toBe(0);
        return out;
      };
      const edited = await make('export-edited');
      const file = join(edited, 'postgres', 'invoices.ndjson');
      await writeFile(file, (await readFile(file, 'utf8')).replace('"tenant_id":"globex"', '"tenant_id":"globey"'));
      const r1 = await runCli(['verify-export', edited, '--public-key', publicKey, '--json']);
      expect(r1.code).toBe(1);
      expect(JSON.parse(r1.stdout).problems).toEqual(['postgres/invoices.ndjson: content changed']);

      const added = await make('export-added');
      await mkdir(join(added, 'extra'));
      await writeFile(join(added, 'extra', 'x.ndjson'), '{}\n');
      const r2 = await runCli(['verify-export', added, '--public-key', publicKey, '--json']);
      expect(r2.code).toBe(1);
      expect(JSON.parse(r2.stdout).problems).toEqual(['extra/x.ndjson: not in the manifest']);

      // Editing a file and its hash in the manifest breaks the signature.
      const forged = await make('export-forged');
      const mf = join(forged, 'manifest.json');
      const m = JSON.parse(await readFile(mf, 'utf8'));
      m.counts.postgres.invoices = 39;
      await writeFile(mf, JSON.stringify(m));
      const r3 = await runCli(['verify-export', forged, '--public-key', publicKey, '--json']);
      expect(r3.code).toBe(1);
      expect(JSON.parse(r3.stdout).problems).toEqual(['manifest.json: signature does not verify with the given key']);

      // Another key does not verify it either.
      const other = join(dir, 'other.pub.pem');
      await writeFile(other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
      const fresh = await make('export-fresh');
      expect((await runCli(['verify-export', fresh, '--public-key', other])).code).toBe(1);
      expect((await runCli(['verify-export', fresh, '--config', config])).code).toBe(0);
      await appendFile(join(fresh, 'audit', 'verification.json'), ' ');
      expect((await runCli(['verify-export', fresh, '--config', config])).code).toBe(1);
    },
    SLOW,
  );

  it.each([
    ['crash1', 'after-postgres'],
    ['crash2', 'after-delete'],
    ['crash3', 'after-certificate'],
  ])(
    'kill -9 during delete of %s (%s), then a rerun completes with exactly one certificate',
    async (tenant, point) => {
      const others = await checksum('globex');
      const killed = await runCli(['tenant', 'delete', tenant, '--confirm', tenant, '--config', config], {
        TENANTSCOPE_TEST_KILL_AT: point,
      });
      expect(killed.code).toBeNull(); // killed by SIGKILL
      const rerun = await runCli(['tenant', 'delete', tenant, '--confirm', tenant, '--config', config, '--json']);
      expect(rerun.code, rerun.stderr).toBe(0);
      const outcome = JSON.parse(rerun.stdout);
      expect(outcome.certificate.stores.postgres).toEqual({
        invoices: { before: 40, after: 0 },
        customers: { before: 5, after: 0 },
      });
      expect(outcome.certificate.stores.s3).toEqual({ objects: { before: 3, after: 0 } });
      expect(outcome.certificate.stores.qdrant).toEqual({ points: { before: 4, after: 0 } });
      expect(outcome.certificate.stores.secrets).toEqual({ names: { before: 2, after: 0 } });
      expect(outcome.certificateWritten).toBe(point !== 'after-certificate');
      expect(await rows(tenant)).toBe(0);
      expect(await certificates(tenant)).toHaveLength(1);
      expect(await checksum('globex')).toEqual(others);
    },
    SLOW,
  );

  it(
    '--out file.tar: the same signed export, streamed into one tar; verify-export reads it; one changed byte fails',
    async () => {
      const tar = join(dir, 'globex.tar');
      const r = await runCli(['tenant', 'export', 'globex', '--out', tar, '--config', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe(''); // not a terminal: no progress bars
      const manifest = JSON.parse(r.stdout);
      const names: string[] = [];
      await readTar(tar, async (e) => {
        names.push(e.name);
      });
      expect(names[0]).toBe('manifest.json');
      expect(names.slice(1).sort()).toEqual(Object.keys(manifest.files).sort());
      expect((await readdir(dir)).filter((f) => f.endsWith('.tenantscope-export'))).toEqual([]);
      const ok = await runCli(['verify-export', tar, '--public-key', publicKey, '--json']);
      expect(ok.code, ok.stdout).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, tenant: 'globex' });
      // The same length, one byte different, inside a file's content.
      const bytes = await readFile(tar);
      const at = bytes.indexOf('"tenant_id":"globex"');
      bytes.write('"tenant_id":"globey"', at);
      const tampered = join(dir, 'globex-tampered.tar');
      await writeFile(tampered, bytes);
      const bad = await runCli(['verify-export', tampered, '--public-key', publicKey, '--json']);
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout).problems).toEqual([expect.stringMatching(/: content changed$/)]);
      // An existing tar is never overwritten.
      expect((await runCli(['tenant', 'export', 'globex', '--out', tar, '--config', config])).code).toBe(2);
    },
    SLOW,
  );

  it(
    'progress bars on a terminal only: per store, up to the store count',
    async () => {
      const out = join(dir, 'export-tty');
      const cmd = [process.execPath, 'packages/cli/src/bin.ts', 'tenant', 'export', 'globex', '--out', out];
      // `script` gives the bin a pseudo-terminal, the way an operator runs it.
      const tty = await new Promise<string>((resolve, reject) => {
        execFile(
          'script',
          ['-qec', [...cmd, '--config', config].map((a) => `'${a}'`).join(' '), '/dev/null'],
          { cwd: root, env: process.env, timeout: SLOW },
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        );
      });
      expect(tty).toMatch(/postgres +\[[^\]]*\] 45\/45/);
      expect(tty).toMatch(/s3 +\[[^\]]*\] 3\/3/);
      expect(tty).toContain(`exported globex to ${out}`);
    },
    SLOW,
  );

  it(
    'subject export and erase: per-table delete or pseudonymise, other subjects and tenants unchanged, hashed id in the audit',
    async () => {
      const rest = async () =>
        (
          await su.query(
            `SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) AS h FROM (
             SELECT id, subject_id, name, email, NULL::int AS amount FROM customers WHERE tenant_id = 'initech' AND subject_id NOT IN ('s2', 'erased')
             UNION ALL SELECT id, subject_id, NULL, NULL, amount FROM invoices WHERE tenant_id = 'initech' AND subject_id NOT IN ('s2', 'erased')) x`,
          )
        ).rows[0].h as string;
      // The other subjects' objects (s20/ is a neighbour of s2/ by prefix), points and secrets.
      const restStores = async () => ({
        s3: [
          await objectsHash('tenants/initech/s1/'),
          await objectsHash('tenants/initech/s20/'),
          await objectsHash('tenants/initech/docs/'),
        ],
        qdrant: await pointsHash('initech', 's2'),
        secrets: (await secretList('initech')).filter((n) => !n.endsWith('/oauth-s2')),
      });
      const before = { initech: await rest(), globex: await checksum('globex'), stores: await restStores() };
      expect(before.stores.s3.map((h) => h.split(':')[0])).toEqual(['1', '1', '1']);
      expect(before.stores.secrets.filter((n) => n.endsWith('/oauth-s20'))).toHaveLength(1);

      const out = join(dir, 'subject-s2');
      const ex = await runCli(['subject', 'export', 'initech', 's2', '--out', out, '--config', config, '--json']);
      expect(ex.code, ex.stderr).toBe(0);
      const manifest = JSON.parse(ex.stdout);
      expect(manifest.counts).toEqual({
        postgres: { invoices: 8, customers: 1 },
        s3: { objects: 1 },
        qdrant: { points: 1 },
        secrets: { names: 1 },
      });
      expect(await readFile(join(out, 'secrets', 'names.ndjson'), 'utf8')).toBe('{"name":"oauth-s2"}\n');
      const s3index = JSON.parse((await readFile(join(out, 's3', 'objects.ndjson'), 'utf8')).trim());
      expect(s3index.key).toBe('s2/profile.json');
      expect(await readFile(join(out, s3index.file), 'utf8')).toBe('initech:s2/profile.json');
      const pts = (await readFile(join(out, 'qdrant', 'points.ndjson'), 'utf8')).trim().split('\n');
      expect(pts.map((l) => JSON.parse(l).payload)).toEqual([
        { tenant_id: 'initech', subject: 's2', text: 'initech doc 2' },
      ]);
      expect(manifest.subject_hash).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
      const inv = (await readFile(join(out, 'postgres', 'invoices.ndjson'), 'utf8')).trim().split('\n');
      expect(new Set(inv.map((l) => `${JSON.parse(l).tenant_id}/${JSON.parse(l).subject_id}`))).toEqual(
        new Set(['initech/s2']),
      );
      expect((await runCli(['verify-export', out, '--public-key', publicKey])).code).toBe(0);

      const noKey = await runCli(['subject', 'erase', 'initech', 's2', '--config', config], {
        TENANTSCOPE_SUBJECT_HASH_KEY: '',
      });
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toContain('dsar.subjectHashKeyEnv');

      const er = await runCli(['subject', 'erase', 'initech', 's2', '--config', config, '--json']);
      expect(er.code, er.stderr).toBe(0);
      expect(JSON.parse(er.stdout).postgres).toEqual({
        invoices: { action: 'pseudonymise', rows: 8 },
        customers: { action: 'delete', rows: 1 },
      });
      expect(JSON.parse(er.stdout).stores).toEqual({
        s3: { deleted: 1 },
        qdrant: { deleted: 1 },
        secrets: { deleted: 1 },
      });
      // s2's object, point and secret are gone.
      expect(await objectsHash('tenants/initech/s2/')).toMatch(/^0:/);
      expect((await pointsHash('initech')).split(':')[0]).toBe('4'); // 4 + s20 - s2
      expect((await secretList('initech')).filter((n) => n.endsWith('/oauth-s2'))).toEqual([]);
      const left = await su.query(
        `SELECT (SELECT count(*) FROM customers WHERE tenant_id = 'initech' AND subject_id = 's2') AS c,
              (SELECT count(*) FROM invoices WHERE tenant_id = 'initech' AND subject_id = 's2') AS i,
              (SELECT count(*) FROM invoices WHERE tenant_id = 'initech' AND subject_id = 'erased') AS p`,
      );
      expect(left.rows[0]).toEqual({ c: '0', i: '0', p: '8' });
      expect({ initech: await rest(), globex: await checksum('globex'), stores: await restStores() }).toEqual(before);

      const stream = (await readdir(join(auditDir, 'initech'))).sort();
      const events = (await Promise.all(stream.map((f) => readFile(join(auditDir, 'initech', f), 'utf8')))).flatMap(
        (t) =>
          t
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l).event),
      );
      const erase = events.filter((e) => e.event_type === 'dsar_subject_erase');
      expect(erase).toHaveLength(1);
      expect(erase[0].details.subject_hash).toBe(manifest.subject_hash);
      expect(JSON.stringify(events)).not.toContain('"s2"');

      // Nothing left for s2, and a subject that never existed: exit 2, nothing changed.
      expect((await runCli(['subject', 'erase', 'initech', 's2', '--config', config])).code).toBe(2);
      expect((await runCli(['subject', 'erase', 'initech', 'nobody', '--config', config])).code).toBe(2);
      expect({ initech: await rest(), globex: await checksum('globex'), stores: await restStores() }).toEqual(before);
    },
    SLOW,
  );

  it(
    'audit verify: every chain verifies; an edited line breaks it (exit 1)',
    async () => {
      const ok = await runCli(['audit', 'verify', '--config', config, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout).streams.length).toBeGreaterThan(0);
      const copy = join(dir, 'audit-copy');
      await cp(auditDir, copy, { recursive: true });
      const day = (await readdir(join(copy, 'acme'))).sort()[0] as string;
      const file = join(copy, 'acme', day);
      await writeFile(file, (await readFile(file, 'utf8')).replace('"result_status":"ok"', '"result_status":"error"'));
      const dsar = JSON.parse(await readFile(config, 'utf8')).dsar;
      const edited = await writeJson(join(dir, 'edited-audit.json'), { dsar: { ...dsar, audit: { jsonlDir: copy } } });
      const bad = await runCli(['audit', 'verify', '--tenant', 'acme', '--config', edited, '--json']);
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout).ok).toBe(false);
      expect((await runCli(['audit', 'verify', '--tenant', 'globex', '--config', edited])).code).toBe(0);
    },
    SLOW,
  );
});
