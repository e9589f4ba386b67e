/**
 * DSAR at scale: `tenantscope tenant export` and `tenant delete`, run through the CLI's real bin in
 * a child process, for one tenant holding BENCH_ROWS Postgres rows (default 1,000,000), BENCH_OBJECTS
 * S3 objects (10,000) and BENCH_POINTS Qdrant points (100,000), beside 9 other tenants (BENCH_OTHER_ROWS
 * rows, a 50th of the objects and points each).
 *  1. Postgres export compared with the raw baseline in the same run: our export (a config naming
 *     only Postgres) against `COPY (SELECT * FROM events WHERE tenant_id = 'bench') TO STDOUT` through
 *     psql into a file, same server and same disk, one warm-up of each side, then BENCH_ROUNDS
 *     interleaved rounds (order swapped every round). Prints rows/s of both, the ratio, and the
 *     peak RSS of each process.
 *  2. The full export (every store): rows/s per store (phases seen from outside, as each store's
 *     folder appears in the export) and peak RSS (sampled every 50 ms over the process tree, and the
 *     kernel's ru_maxrss at exit), then `verify-export`.
 *  3. The delete: per store, the time until the store is seen empty from outside (polled every
 *     100 ms), the deletion certificate, and that the other tenants' counts did not change.
 * Env: DATABASE_URL (superuser; else testcontainers or embedded), S3_ENDPOINT & co (else MinIO or
 * s3rver), QDRANT_URL (else the protocol double, in this process), BENCH_ROWS, BENCH_OBJECTS,
 * BENCH_POINTS, BENCH_OTHER_ROWS, BENCH_ROUNDS, BENCH_CPU_PROFILE. Needs `psql` on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { installTenantScope, pg, tenantTableSql } from '@tenantscope/postgres';
import {
  createTestBucket,
  deleteTestBucket,
  resolvePostgres,
  resolveQdrant,
  resolveS3,
  s3Client,
} from '@tenantscope/testkit';
import { createScratchDatabase } from '../../../packages/postgres/src/testing/scratch.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 10_000);
const POINTS = Number(process.env.BENCH_POINTS ?? 100_000);
const OTHER_ROWS = Number(process.env.BENCH_OTHER_ROWS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Objects in flight in the S3 comparison (the baseline is 1, one object at a time). */
const S3_CONCURRENCY = Number(process.env.BENCH_S3_CONCURRENCY ?? 16);
/** Which parts run after seeding: pg (export vs COPY), s3 (concurrency 1 vs N), full (every store), delete. */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'pg,s3,full,delete').split(','));
const TENANT = 'bench';
const OTHERS = Array.from({ length: 9 }, (_, i) => `other${i + 1}`);
const root = resolve(import.meta.dirname, '../../..');
const bin = join(root, 'packages/cli/src/bin.ts');
const preload = join(import.meta.dirname, 'rss-at-exit.ts');
/** BENCH_CPU_PROFILE=<dir>: the Postgres-only export runs write V8 CPU profiles there (--cpu-prof). */
const profile = process.env.BENCH_CPU_PROFILE
  ? ['--cpu-prof', '--cpu-prof-dir', resolve(process.env.BENCH_CPU_PROFILE)]
  : [];

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (kib: number) => `${(kib / 1024).toFixed(0)} MB`;
const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

if (spawnSync('psql', ['--version']).status !== 0) {
  console.error('dsar bench: psql must be on PATH (the raw COPY baseline runs through it)');
  process.exit(2);
}

/** RSS (KiB) of a process and all its descendants, from /proc; 0 once it is gone. */
function treeRss(pid: number): number {
  let kib = 0;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    kib += Number(m?.[1] ?? 0);
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(/\s+/) : []) kib += treeRss(Number(k));
    }
  } catch {
    // exited between two reads
  }
  return kib;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Highest sampled RSS of the process tree (KiB). */
  sampledPeakKib: number;
  /** The kernel's ru_maxrss of the CLI process at exit (KiB), when it is a CLI run. */
  maxRssKib: number | null;
  /** CPU time (user + system, ms) the CLI process used, when it is a CLI run. */
  cpuMs: number | null;
  /** performance.now() when each watched path was first seen. */
  seen: Record<string, number>;
  started: number;
}

/** Runs a command, sampling its RSS every 50 ms and noting when each `watch` path appears. */
function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; watch?: string[]; stdoutFile?: string; rssFile?: string } = {},
): Promise<Run> {
  return new Promise((done, fail) => {
    const started = performance.now();
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ...opts.env, ...(opts.rssFile ? { BENCH_RSS_FILE: opts.rssFile } : {}) },
      stdio: ['ignore', opts.stdoutFile ? openSync(opts.stdoutFile, 'w') : 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    let peak = 0;
    const seen: Record<string, number> = {};
    const sample = () => {
      peak = Math.max(peak, treeRss(child.pid as number));
      for (const p of opts.watch ?? []) if (seen[p] === undefined && existsSync(p)) seen[p] = performance.now();
    };
    const timer = setInterval(sample, 50);
    child.on('error', fail);
    child.on('close', (code) => {
      clearInterval(timer);
      const ms = performance.now() - started;
      for (const p of opts.watch ?? []) if (seen[p] === undefined && existsSync(p)) seen[p] = performance.now();
      let usage = { maxRssKib: null as number | null, cpuMs: null as number | null };
      if (opts.rssFile && existsSync(opts.rssFile)) usage = JSON.parse(readFileSync(opts.rssFile, 'utf8'));
      done({ code, stdout, stderr, ms, sampledPeakKib: peak, ...usage, seen, started });
    });
  });
}

const tBoot = performance.now();
const pgr = await resolvePostgres();
const s3r = await resolveS3();
const qr = await resolveQdrant();
console.log(`postgres: ${pgr.describe}\ns3: ${s3r.describe}\nqdrant: ${qr.describe}`);
console.log(
  `tenant ${TENANT}: ${fmt(ROWS)} rows, ${fmt(OBJECTS)} objects, ${fmt(POINTS)} points; ` +
    `${OTHERS.length} other tenants with ${fmt(OTHER_ROWS)} rows, ${fmt(OBJECTS / 50)} objects, ${fmt(POINTS / 50)} points each`,
);

const work = await mkdtemp(join(tmpdir(), 'tsdsar-bench-'));
const db = await createScratchDatabase(pgr.url, 'dsarbench');
const s3 = s3Client(s3r);
const bucket = await createTestBucket(s3, 'dsarbench');
const collection = `dsarbench_${Date.now().toString(36)}`;
const su = new pg.Client({ connectionString: db.superUrl });

async function qdrant(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${qr.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(qr.apiKey ? { 'api-key': qr.apiKey } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`qdrant ${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}

async function pointCount(tenant: string): Promise<number> {
  const r = await qdrant('POST', `/collections/${collection}/points/count`, {
    filter: { must: [{ key: 'tenant_id', match: { value: tenant } }] },
    exact: true,
  });
  return (r.result as { count: number }).count;
}

async function objectCount(tenant: string, max = 1000): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: `tenants/${tenant}/`,
        ContinuationToken: token,
        MaxKeys: max,
      }),
    );
    n += r.KeyCount ?? 0;
    token = r.NextContinuationToken;
  } while (token && max === 1000);
  return n;
}

async function rowCount(tenant: string): Promise<number> {
  return Number((await su.query('SELECT count(*) AS n FROM events WHERE tenant_id = $1', [tenant])).rows[0].n);
}

/** Every other tenant's row, object and point counts. */
async function othersCounts(): Promise<string> {
  const out: string[] = [];
  for (const t of OTHERS) out.push(`${t}:${await rowCount(t)}/${await objectCount(t)}/${await pointCount(t)}`);
  return out.join(' ');
}

async function pool<T>(items: T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: size }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

try {
  // ---- seed
  let t0 = performance.now();
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
  await installTenantScope(owner, { appRole: db.appRole });
  await owner.query(`CREATE TABLE events (
    id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, kind text NOT NULL,
    amount integer NOT NULL, note text NOT NULL, created_at timestamptz NOT NULL)`);
  await owner.query(tenantTableSql({ table: 'events', idColumn: 'id', grantTo: db.appRole }));
  await owner.end();
  await su.connect();
  const seedRows = `INSERT INTO events SELECT gen_random_uuid(), t, 's' || (i % 5000), 'kind-' || (i % 7), i % 100000,
      'note ' || md5(t || i), timestamptz '2026-01-01' + i * interval '1 second'
    FROM unnest($1::text[]) t, generate_series(1, $2::int) i`;
  await su.query(seedRows, [[TENANT], ROWS]);
  await su.query(seedRows, [OTHERS, OTHER_ROWS]);
  await su.query('VACUUM ANALYZE events');
  console.log(`seeded postgres: ${fmt(ROWS + OTHERS.length * OTHER_ROWS)} rows in ${since(t0)}`);

  t0 = performance.now();
  const keys = [
    ...Array.from({ length: OBJECTS }, (_, i) => `tenants/${TENANT}/s${i % 5000}/doc-${i}.json`),
    ...OTHERS.flatMap((t) => Array.from({ length: OBJECTS / 50 }, (_, i) => `tenants/${t}/s${i}/doc-${i}.json`)),
  ];
  await pool(keys, 32, async (key) => {
    const body = JSON.stringify({ key, text: 'x'.repeat(200) });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
  });
  console.log(`seeded s3: ${fmt(keys.length)} objects in ${since(t0)}`);

  t0 = performance.now();
  await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 4, distance: 'Cosine' } });
  await qdrant('PUT', `/collections/${collection}/index?wait=true`, {
    field_name: 'tenant_id',
    field_schema: { type: 'keyword', is_tenant: true },
  });
  const owners = [
    ...Array.from({ length: POINTS }, () => TENANT),
    ...OTHERS.flatMap((t) => Array.from({ length: POINTS / 50 }, () => t)),
  ];
  for (let start = 0; start < owners.length; start += 2000) {
    const points = owners.slice(start, start + 2000).map((t, j) => {
      const id = start + j + 1;
      return {
        id,
        vector: [1, id % 97, 0.5, 1],
        payload: { tenant_id: t, subject: `s${id % 5000}`, text: `doc ${id}` },
      };
    });
    await qdrant('PUT', `/collections/${collection}/points?wait=true`, { points });
  }
  console.log(`seeded qdrant: ${fmt(owners.length)} points in ${since(t0)}`);

  // ---- config
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(work, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const env: Record<string, string> = {
    BENCH_S3_KEY: s3r.accessKeyId,
    BENCH_S3_SECRET: s3r.secretAccessKey,
    BENCH_QDRANT_KEY: qr.apiKey ?? '',
  };
  const postgres = { url: db.ownerUrl, tables: [{ name: 'events', subjectColumn: 'subject_id' }] };
  const base = {
    tenants: [TENANT, ...OTHERS],
    postgres,
    audit: { jsonlDir: 'audit' },
    signingKey: 'signing.pem',
    actor: 'bench@example.test',
  };
  const s3Section = {
    endpoint: s3r.endpoint,
    region: s3r.region,
    bucket,
    accessKeyIdEnv: 'BENCH_S3_KEY',
    secretAccessKeyEnv: 'BENCH_S3_SECRET',
  };
  await writeFile(join(work, 'pg-only.json'), JSON.stringify({ dsar: base }));
  for (const c of new Set([1, S3_CONCURRENCY])) {
    await writeFile(
      join(work, `s3-c${c}.json`),
      JSON.stringify({ dsar: { ...base, s3: { ...s3Section, concurrency: c } } }),
    );
  }
  await writeFile(
    join(work, 'all.json'),
    JSON.stringify({
      dsar: {
        ...base,
        s3: s3Section,
        qdrant: { url: qr.url, collection, ...(qr.apiKey ? { apiKeyEnv: 'BENCH_QDRANT_KEY' } : {}) },
      },
    }),
  );
  console.log(`set-up total ${since(tBoot)}\n`);

  /** `tenant export` of the bench tenant through the bin (with the RSS preload), with a config in `work`. */
  const exportArgs = (out: string, config: string) => [
    '--import',
    preload,
    bin,
    'tenant',
    'export',
    TENANT,
    '--out',
    out,
    '--config',
    join(work, config),
  ];

  // ---- 1. Postgres export against raw COPY, interleaved
  let n = 0;
  if (SECTIONS.has('pg')) {
    const ours = async () => {
      const out = join(work, `export-pg-${n++}`);
      const r = await run(process.execPath, [...profile, ...exportArgs(out, 'pg-only.json')], {
        env,
        rssFile: join(work, `rss-${n}`),
        watch: [join(out, 'postgres'), join(out, 'audit')],
      });
      if (r.code !== 0) throw new Error(`tenant export exited ${r.code}: ${r.stderr}`);
      const t = (r.seen[join(out, 'audit')] ?? 0) - (r.seen[join(out, 'postgres')] ?? 0);
      const bytes = statSync(join(out, 'postgres', 'events.ndjson')).size;
      await rm(out, { recursive: true, force: true });
      return {
        rate: ROWS / (t / 1000),
        wall: ROWS / (r.ms / 1000),
        rss: r.maxRssKib ?? r.sampledPeakKib,
        bytes,
        cpu: r.cpuMs ?? Number.NaN,
      };
    };
    const raw = async () => {
      const file = join(work, `raw-${n++}.txt`);
      const sql = `COPY (SELECT * FROM events WHERE tenant_id = '${TENANT}') TO STDOUT`;
      const r = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', db.superUrl, '-c', sql], { stdoutFile: file });
      if (r.code !== 0) throw new Error(`psql COPY exited ${r.code}: ${r.stderr}`);
      const bytes = statSync(file).size;
      await rm(file, { force: true });
      return { rate: ROWS / (r.ms / 1000), wall: ROWS / (r.ms / 1000), rss: r.sampledPeakKib, bytes, cpu: Number.NaN };
    };
    const idle = await run(process.execPath, ['--import', preload, bin, '--help'], { rssFile: join(work, 'rss-help') });
    console.log(
      `start-up alone (tenantscope --help): ${(idle.ms / 1000).toFixed(1)} s, CPU ${((idle.cpuMs ?? 0) / 1000).toFixed(1)} s, ` +
        `peak RSS ${mb(idle.maxRssKib ?? 0)}`,
    );
    t0 = performance.now();
    const warm = [await ours(), await raw()];
    console.log(
      `warm-up: tenantscope export ${fmt(warm[0]?.rate ?? 0)} rows/s, raw COPY ${fmt(warm[1]?.rate ?? 0)} rows/s (${since(t0)})`,
    );
    const sides: Record<'ours' | 'raw', Awaited<ReturnType<typeof ours>>[]> = { ours: [], raw: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('ours' | 'raw')[] = r % 2 === 0 ? ['ours', 'raw'] : ['raw', 'ours'];
      for (const side of order) sides[side].push(side === 'ours' ? await ours() : await raw());
    }
    const line = (label: string, xs: (typeof sides)['ours']) =>
      `${label}: ${fmt(mean(xs.map((x) => x.rate)))} rows/s (rounds: ${xs.map((x) => fmt(x.rate)).join(', ')}; ` +
      `whole command ${fmt(mean(xs.map((x) => x.wall)))} rows/s), peak RSS ${mb(Math.max(...xs.map((x) => x.rss)))}, ` +
      `${(mean(xs.map((x) => x.bytes)) / 1e6).toFixed(0)} MB written`;
    console.log(`\n== Postgres export, ${fmt(ROWS)} rows, ${ROUNDS} interleaved rounds after a warm-up of each side`);
    console.log(line('tenantscope tenant export (bin, NDJSON, sha256, streamed)', sides.ours));
    console.log(line(`raw COPY (SELECT * … WHERE tenant_id = $1) TO STDOUT (psql)`, sides.raw));
    const ratio = mean(sides.ours.map((x) => x.rate)) / mean(sides.raw.map((x) => x.rate));
    console.log(`ratio tenantscope / raw COPY: ${ratio.toFixed(2)}`);
    // Machine-independent of other load: what one core of the CLI process gets through.
    const cpu = mean(sides.ours.map((x) => x.cpu));
    console.log(
      `CPU time of the CLI process (whole command, start-up included): ${(cpu / 1000).toFixed(1)} s = ` +
        `${fmt(ROWS / (cpu / 1000))} rows per CPU-second; load average at the end ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')} on ${availableParallelism()} cores`,
    );
  }

  // ---- 1b. S3 export: one object at a time (the baseline: concurrency 1, how it ran before) against
  // S3_CONCURRENCY in flight, same bin, same bucket and objects, warm-up of each, interleaved rounds.
  // The S3 phase is timed from outside: from s3/ appearing to audit/ appearing (the recount included).
  if (SECTIONS.has('s3')) {
    const s3Export = async (c: number) => {
      const out = join(work, `export-s3-${n++}`);
      const r = await run(process.execPath, exportArgs(out, `s3-c${c}.json`), {
        env,
        rssFile: join(work, `rss-${n}`),
        watch: [join(out, 's3'), join(out, 'audit')],
      });
      if (r.code !== 0) throw new Error(`tenant export (concurrency ${c}) exited ${r.code}: ${r.stderr}`);
      const t = (r.seen[join(out, 'audit')] ?? 0) - (r.seen[join(out, 's3')] ?? 0);
      await rm(out, { recursive: true, force: true });
      return { rate: OBJECTS / (t / 1000), rss: r.maxRssKib ?? r.sampledPeakKib };
    };
    t0 = performance.now();
    const w1 = await s3Export(1);
    const wN = await s3Export(S3_CONCURRENCY);
    console.log(
      `\nwarm-up: S3 export concurrency 1 ${fmt(w1.rate)} objects/s, concurrency ${S3_CONCURRENCY} ${fmt(wN.rate)} objects/s (${since(t0)})`,
    );
    const got: Record<number, Awaited<ReturnType<typeof s3Export>>[]> = { 1: [], [S3_CONCURRENCY]: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [1, S3_CONCURRENCY] : [S3_CONCURRENCY, 1];
      for (const c of order) got[c]?.push(await s3Export(c));
    }
    const s3Line = (c: number) => {
      const xs = got[c] ?? [];
      return (
        `concurrency ${c}: ${fmt(mean(xs.map((x) => x.rate)))} objects/s (rounds: ${xs.map((x) => fmt(x.rate)).join(', ')}), ` +
        `peak RSS ${mb(Math.max(...xs.map((x) => x.rss)))}`
      );
    };
    console.log(`== S3 export, ${fmt(OBJECTS)} objects, ${ROUNDS} interleaved rounds after a warm-up of each side`);
    console.log(s3Line(1));
    console.log(s3Line(S3_CONCURRENCY));
    const s3Ratio = mean((got[S3_CONCURRENCY] ?? []).map((x) => x.rate)) / mean((got[1] ?? []).map((x) => x.rate));
    console.log(`ratio concurrency ${S3_CONCURRENCY} / concurrency 1: ${s3Ratio.toFixed(2)}`);
  }

  // ---- 2. the full export, every store
  const beforeOthers = await othersCounts();
  if (SECTIONS.has('full')) {
    const out = join(work, 'export-all');
    const dirs = ['postgres', 's3', 'qdrant', 'audit'].map((d) => join(out, d));
    const ex = await run(process.execPath, [...exportArgs(out, 'all.json'), '--json'], {
      env,
      rssFile: join(work, 'rss-all'),
      watch: dirs,
    });
    if (ex.code !== 0) throw new Error(`tenant export exited ${ex.code}: ${ex.stderr}`);
    const counts = (JSON.parse(ex.stdout) as { counts: Record<string, Record<string, number>> }).counts;
    const at = dirs.map((d) => ex.seen[d] ?? Number.NaN);
    const phase = (i: number, items: number, label: string) => {
      const s = ((at[i + 1] as number) - (at[i] as number)) / 1000;
      return `  ${label}: ${fmt(items)} in ${s.toFixed(1)} s = ${fmt(items / s)}/s`;
    };
    console.log(`\n== Full export (every store), whole command ${(ex.ms / 1000).toFixed(1)} s`);
    console.log(phase(0, counts.postgres?.events ?? 0, 'postgres rows'));
    console.log(phase(1, counts.s3?.objects ?? 0, 's3 objects'));
    console.log(phase(2, counts.qdrant?.points ?? 0, 'qdrant points'));
    console.log(
      `  peak RSS of the CLI: ${mb(ex.maxRssKib ?? 0)} (ru_maxrss), ${mb(ex.sampledPeakKib)} (sampled, process tree); ` +
        `CPU ${((ex.cpuMs ?? 0) / 1000).toFixed(1)} s`,
    );
    const vr = await run(process.execPath, [bin, 'verify-export', out, '--config', join(work, 'all.json'), '--json'], {
      env,
    });
    console.log(`  verify-export: exit ${vr.code} in ${(vr.ms / 1000).toFixed(1)} s`);
    await rm(out, { recursive: true, force: true });
  }

  // ---- 3. the delete, each store polled from outside
  if (SECTIONS.has('delete')) {
    const gone: Record<string, number> = {};
    let polling = true;
    let jobStart: number | undefined;
    const poll = (async () => {
      while (polling) {
        if (jobStart === undefined) {
          const j = await su
            .query(
              `SELECT (extract(epoch from started_at) * 1000)::float8 AS ms FROM tenantscope_cli.deletion_jobs WHERE tenant_id = $1`,
              [TENANT],
            )
            .catch(() => ({ rows: [] as { ms: number }[] }));
          const ms = j.rows[0]?.ms;
          if (ms !== undefined) jobStart = performance.now() - (Date.now() - Number(ms));
        }
        if (gone.postgres === undefined) {
          const e = await su.query('SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1) AS e', [TENANT]);
          if (!e.rows[0].e) gone.postgres = performance.now();
        }
        if (gone.s3 === undefined && (await objectCount(TENANT, 1)) === 0) gone.s3 = performance.now();
        if (gone.qdrant === undefined && (await pointCount(TENANT)) === 0) gone.qdrant = performance.now();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const del = await run(
      process.execPath,
      [
        '--import',
        preload,
        bin,
        'tenant',
        'delete',
        TENANT,
        '--confirm',
        TENANT,
        '--config',
        join(work, 'all.json'),
        '--json',
      ],
      { env, rssFile: join(work, 'rss-delete') },
    );
    polling = false;
    await poll;
    if (del.code !== 0) throw new Error(`tenant delete exited ${del.code}: ${del.stderr}`);
    const outcome = JSON.parse(del.stdout) as { certificate: unknown };
    const s = (a: number | undefined, b: number | undefined) => ((a ?? Number.NaN) - (b ?? Number.NaN)) / 1000;
    console.log(
      `\n== Delete (every store), whole command ${(del.ms / 1000).toFixed(1)} s; each store seen empty from outside:`,
    );
    const pgS = s(gone.postgres, jobStart);
    const s3S = s(gone.s3, gone.postgres);
    const qS = s(gone.qdrant, gone.s3);
    console.log(`  postgres rows: ${fmt(ROWS)} in ${pgS.toFixed(1)} s = ${fmt(ROWS / pgS)}/s (from the job record)`);
    console.log(`  s3 objects: ${fmt(OBJECTS)} in ${s3S.toFixed(1)} s = ${fmt(OBJECTS / s3S)}/s`);
    console.log(`  qdrant points: ${fmt(POINTS)} in ${qS.toFixed(1)} s = ${fmt(POINTS / qS)}/s`);
    console.log(`  peak RSS of the CLI: ${mb(del.maxRssKib ?? 0)} (ru_maxrss), ${mb(del.sampledPeakKib)} (sampled)`);
    const afterOthers = await othersCounts();
    console.log(
      `  the other 9 tenants' rows/objects/points: ${afterOthers === beforeOthers ? 'unchanged' : 'CHANGED'}`,
    );
    console.log(
      `  left for ${TENANT}: ${await rowCount(TENANT)} rows, ${await objectCount(TENANT)} objects, ${await pointCount(TENANT)} points`,
    );
    console.log(`deletion certificate:\n${JSON.stringify(outcome.certificate, null, 2)}`);
    if (afterOthers !== beforeOthers) process.exitCode = 1;
  }
} finally {
  await su.end().catch(() => undefined);
  await db.drop().catch(() => undefined);
  await deleteTestBucket(s3, bucket);
  await qdrant('DELETE', `/collections/${collection}`).catch(() => undefined);
  s3.destroy();
  await rm(work, { recursive: true, force: true });
  await Promise.allSettled([pgr.stop(), s3r.stop(), qr.stop()]);
}
