/**
 * DSAR follows the tenant's placement. acme's Postgres rows and S3 objects are moved to dedicated
 * tiers with the real `tenant move`; then every DSAR command (the real bin) works at acme's own
 * database and bucket, as the placement registry says: the export holds acme's rows from there
 * (counts and checksums equal to what the move verified), a subject erase and the delete happen
 * there (recount 0 with a raw connection), globex stays byte-identical, and the certificate and the
 * manifest name the dedicated places. A DSAR during a paused move is refused and changes nothing.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { databaseUrl, pg } from '@tenantscope/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, runCli, writeJson } from './helpers.ts';
import { createMoveFixture, MOVE_TABLES, type MoveFixture } from './move-fixture.ts';

const SLOW = 120_000;
const HASH_KEY = { TENANTSCOPE_SUBJECT_HASH_KEY: 'dsar-placement-test-subject-hash-key-0123456789' };
const PER_TENANT = 20;
const OBJECTS = 4;
let fx: MoveFixture;
/** The fixture's config with a subject column on customers (pseudonymised on erase). */
let config: string;
/** The same with the registry ignored: the DSAR CLI as it was before it followed placements. */
let blindConfig: string;
let acmeDb: string;
let acmeBucket: string;
/** What each move verified under its pause: per part, count and checksum. */
const verified: Record<string, Record<string, { n: number; sum: string }>> = {};
let globexBefore: { rows: Map<string, string>; objects: Map<string, string> };

const globexNow = async () => ({
  rows: await fx.rowsOf(fx.db.name, 'globex'),
  objects: await fx.objectsOf(fx.shared, 'globex'),
});

/** acme's data at both places, read raw (superuser, unscoped S3 client). */
const acmeEverywhere = async () => ({
  sharedRows: await fx.rowsOf(fx.db.name, 'acme'),
  ownRows: await fx.rowsOf(acmeDb, 'acme'),
  sharedObjects: await fx.objectsOf(fx.shared, 'acme'),
  ownObjects: await fx.objectsOf(acmeBucket, 'acme'),
});

/** The move's checksum (sum of 60 bits of md5 of each row's jsonb) over rows given as NDJSON lines of `table`. */
async function moveChecksum(table: string, lines: string[]): Promise<{ n: number; sum: string }> {
  const r = await fx.su.query<{ n: string; sum: string }>(
    `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(to_jsonb(x)::text), 1, 15))::bit(60)::bigint), 0)::text AS sum
       FROM jsonb_populate_recordset(NULL::${table}, $1::jsonb) x`,
    [`[${lines.join(',')}]`],
  );
  return { n: Number(r.rows[0]?.n), sum: String(r.rows[0]?.sum) };
}

beforeAll(async () => {
  fx = await createMoveFixture('dsarpl', ['acme', 'globex']);
  await fx.seedRows(['acme', 'globex'], PER_TENANT);
  await fx.seedObjects(['acme', 'globex'], OBJECTS);
  const base = JSON.parse(await readFile(fx.config, 'utf8'));
  base.dsar.postgres.tables = [
    { name: 'invoices' },
    {
      name: 'customers',
      subjectColumn: 'subject_id',
      erase: { pseudonymise: { subject_id: 'erased', name: 'erased', email: 'erased' } },
    },
  ];
  config = await writeJson(join(fx.dir, 'placed.config.json'), base);
  base.dsar.postgres.registrySchema = false;
  blindConfig = await writeJson(join(fx.dir, 'blind.config.json'), base);
  acmeDb = await fx.provision(`${fx.db.name}_acme`);
  acmeBucket = await fx.bucket('dsarpl-acme');
  globexBefore = await globexNow();
  // One store after the other: the first run creates the CLI's job table.
  for (const [store, target] of [
    ['postgres', acmeDb],
    ['s3', acmeBucket],
  ] as const) {
    const mv = await runCli(fx.mv('acme', store, 'dedicated', target, '--settle-ms', '50', '--json'));
    expect(mv.code, mv.stderr).toBe(0);
    verified[store] = JSON.parse(mv.stdout).record.verified.parts;
  }
  const at = await acmeEverywhere();
  expect([at.sharedRows.size, at.ownRows.size, at.sharedObjects.size, at.ownObjects.size]).toEqual([
    0,
    2 * PER_TENANT,
    0,
    OBJECTS,
  ]);
}, SLOW);

afterAll(async () => {
  await fx?.close();
});

describe('DSAR of a tenant on dedicated tiers', () => {
  it(
    "tenant export reads acme's own database and bucket: counts and checksums equal to what the move verified; the manifest names the places",
    async () => {
      const out = await mkdtemp(join(fx.dir, 'export-'));
      const ex = await runCli(['tenant', 'export', 'acme', '--out', out, '--config', config, '--json']);
      expect(ex.code, ex.stderr).toBe(0);
      const manifest = JSON.parse(ex.stdout);
      expect(manifest.placement).toEqual({
        postgres: { tier: 'dedicated', target: acmeDb },
        s3: { tier: 'dedicated', target: acmeBucket },
      });
      for (const t of MOVE_TABLES) {
        const lines = (await readFile(join(out, 'postgres', `${t}.ndjson`), 'utf8')).trim().split('\n');
        expect(manifest.counts.postgres[t]).toBe(PER_TENANT);
        expect(await moveChecksum(t, lines)).toEqual(verified.postgres?.[t]);
      }
      expect(manifest.counts.s3.objects).toBe(OBJECTS);
      expect(verified.s3?.objects?.n).toBe(OBJECTS);
      // Every exported object is byte-identical to the one in acme's bucket.
      const own = await fx.objectsOf(acmeBucket, 'acme');
      const index = (await readFile(join(out, 's3', 'objects.ndjson'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; file: string });
      const exported = new Map<string, string>();
      for (const o of index) {
        const key = o.key.startsWith('tenants/') ? o.key : `tenants/acme/${o.key}`;
        exported.set(
          key,
          createHash('sha256')
            .update(await readFile(join(out, o.file)))
            .digest('hex'),
        );
      }
      expect(exported).toEqual(own);
      const v = await runCli(['verify-export', out, '--config', config, '--json']);
      expect(v.code, v.stdout).toBe(0);
    },
    SLOW,
  );

  it(
    'subject erase pseudonymises the subject in acme’s own database; its other subjects and globex unchanged',
    async () => {
      const before = await fx.rowsOf(acmeDb, 'acme');
      const er = await runCli(['subject', 'erase', 'acme', 's1', '--config', config, '--json'], HASH_KEY);
      expect(er.code, er.stderr).toBe(0);
      const r = JSON.parse(er.stdout);
      expect(r.placement.postgres).toEqual({ tier: 'dedicated', target: acmeDb });
      expect(r.postgres.customers).toEqual({ action: 'pseudonymise', rows: PER_TENANT / 5 });
      const after = await fx.rowsOf(acmeDb, 'acme');
      const changed = [...after].filter(([k, v]) => before.get(k) !== v).map(([, v]) => JSON.parse(v));
      expect(changed).toHaveLength(PER_TENANT / 5);
      for (const row of changed) expect([row.subject_id, row.name, row.email]).toEqual(['erased', 'erased', 'erased']);
      expect([...after.values()].filter((v) => JSON.parse(v).subject_id === 's1')).toEqual([]);
      expect(await globexNow()).toEqual(globexBefore);
    },
    SLOW,
  );

  it(
    'a DSAR while a move of acme is paused is refused (CLI_MOVE_IN_PROGRESS, exit 2) and changes nothing',
    async () => {
      // A move back to shared, killed right after the pause: the registry says "paused".
      const back = fx.mv('acme', 'postgres', 'shared', undefined, '--settle-ms', '50');
      const killed = await runCli(back, { TENANTSCOPE_TEST_KILL_AT: 'after-pause' });
      expect(killed.code, killed.stderr).toBe(null);
      const before = await acmeEverywhere();
      const jobs = async () =>
        (await fx.su.query('SELECT count(*)::int AS n FROM tenantscope_cli.deletion_jobs')).rows[0]?.n ?? 0;
      const jobsBefore = await jobs().catch(() => 0);
      const r = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('CLI_MOVE_IN_PROGRESS');
      expect(r.stderr).toContain('postgres is unfinished (paused)');
      expect(await acmeEverywhere()).toEqual(before);
      expect(await jobs().catch(() => 0)).toBe(jobsBefore);
      expect(await globexNow()).toEqual(globexBefore);
      const rb = await runCli([...back, '--rollback']);
      expect(rb.code, rb.stderr).toBe(0);
      expect((await fx.rowsOf(fx.db.name, 'acme')).size).toBe(0);
    },
    SLOW,
  );

  it(
    "tenant delete empties acme's own database and bucket (raw recount 0), certifies those places, globex byte-identical; the registry-blind delete did not",
    async () => {
      // The CLI as it was (the registry ignored): it works at the shared place only, where acme has
      // nothing left (and is fenced): it errors or certifies a 0 while acme's rows remain.
      const blind = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', blindConfig, '--json']);
      const left = await acmeEverywhere();
      expect(left.ownRows.size).toBe(2 * PER_TENANT);
      expect(left.ownObjects.size).toBe(OBJECTS);
      console.log(`registry-blind delete: exit ${blind.code}, ${(blind.stderr || blind.stdout).split('\n')[0]}`);
      expect(blind.code === 0 ? JSON.parse(blind.stdout).certificate.placement.postgres.tier : 'failed').not.toBe(
        'dedicated',
      );

      const del = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme', '--config', config, '--json']);
      expect(del.code, del.stderr).toBe(0);
      const cert = JSON.parse(del.stdout).certificate;
      expect(cert.placement).toEqual({
        postgres: { tier: 'dedicated', target: acmeDb },
        s3: { tier: 'dedicated', target: acmeBucket },
      });
      expect(cert.stores.postgres).toEqual({
        customers: { before: PER_TENANT, after: 0 },
        invoices: { before: PER_TENANT, after: 0 },
      });
      expect(cert.stores.s3).toEqual({ objects: { before: OBJECTS, after: 0 } });
      // Raw recount at the dedicated places (superuser, every row of the database; raw S3 list).
      const raw = new pg.Client({ connectionString: databaseUrl(fx.db.superUrl, acmeDb) });
      await raw.connect();
      try {
        for (const t of MOVE_TABLES) {
          expect((await raw.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n, t).toBe(0);
        }
      } finally {
        await raw.end();
      }
      const at = await acmeEverywhere();
      expect([at.sharedRows.size, at.ownRows.size, at.sharedObjects.size, at.ownObjects.size]).toEqual([0, 0, 0, 0]);
      expect(await globexNow()).toEqual(globexBefore);
      const events = await auditEvents(fx.auditDir, 'acme', (e) => e.event_type === 'dsar_deletion_certificate');
      const details = events.at(-1)?.details as Record<string, unknown>;
      expect(details['postgres.placement']).toBe(`dedicated:${acmeDb}`);
      expect(details['s3.placement']).toBe(`dedicated:${acmeBucket}`);
    },
    SLOW,
  );
});
