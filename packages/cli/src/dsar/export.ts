import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '@tenantscope/core';
import { exportAuditStream } from '../audit/export.ts';
import { VERSION } from '../check/run.ts';
import { cliError } from '../errors.ts';
import { countAll } from './delete.ts';
import { assertPlacementsUnchanged, type Placements, placedStores } from './placement.ts';
import { noProgress, type Progress } from './progress.ts';
import { allKeys, checkRecount, exportObjects, type ObjectsExported, s3Concurrency } from './s3-objects.ts';
import type { Stores } from './stores.ts';
import { isTar, readTar, walk } from './tar.ts';

export const EXPORT_FORMAT = 'tenantscope-export/1';

export interface FileEntry {
  sha256: string;
  bytes: number;
}

export interface Manifest {
  format: typeof EXPORT_FORMAT;
  tool: { name: '@tenantscope/cli'; version: string };
  tenant: string;
  /** A subject export: the keyed hash of the subject id (the id itself is not in the manifest). */
  subject_hash?: string;
  started_at: string;
  finished_at: string;
  counts: Record<string, Record<string, number>>;
  /** Per store, where the data was read: `{ tier, target }` from the placement registry. */
  placement?: Placements;
  files: Record<string, FileEntry>;
}

export interface SignedManifest extends Manifest {
  signature: { alg: 'Ed25519'; key_sha256: string; value: string };
}

/** Reads an Ed25519 private key: PEM (PKCS#8) or a JWK JSON file. */
export async function readSigningKey(path: string): Promise<KeyObject> {
  let key: KeyObject;
  try {
    const text = await readFile(path, 'utf8');
    key = text.trimStart().startsWith('{')
      ? createPrivateKey({ key: JSON.parse(text), format: 'jwk' })
      : createPrivateKey(text);
  } catch (cause) {
    throw cliError('CLI_KEY_INVALID', `dsar.signingKey: ${path} is not a readable private key`, { cause });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw cliError('CLI_KEY_INVALID', `dsar.signingKey: ${path} is ${key.asymmetricKeyType}, not Ed25519`);
  }
  return key;
}

/** Reads an Ed25519 public key (PEM SPKI or JWK), or derives it from a private key file. */
export async function readVerifyKey(path: string): Promise<KeyObject> {
  try {
    const text = await readFile(path, 'utf8');
    // A JWK, a JWKS (its first key, as `tenantscope keygen` writes) or PEM.
    const json = text.trimStart().startsWith('{') ? JSON.parse(text) : undefined;
    const src = json ? { key: Array.isArray(json.keys) ? json.keys[0] : json, format: 'jwk' as const } : text;
    const key = createPublicKey(src);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${key.asymmetricKeyType}, not Ed25519`);
    return key;
  } catch (cause) {
    throw cliError('CLI_KEY_INVALID', `${path} is not an Ed25519 key (${(cause as Error).message})`, { cause });
  }
}

function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** A file written through a hash, with back-pressure: memory stays bounded whatever the size. */
export class HashedFile {
  /** Small writes (one NDJSON line each) are joined up to this many bytes before hashing and writing. */
  static readonly CHUNK_BYTES = 64 * 1024;
  readonly #out: ReturnType<typeof createWriteStream>;
  readonly #hash = createHash('sha256');
  #pending: string[] = [];
  #pendingLength = 0;
  bytes = 0;
  constructor(path: string) {
    this.#out = createWriteStream(path, { flags: 'wx' });
  }
  async write(chunk: string | Buffer): Promise<void> {
    if (typeof chunk === 'string') {
      // Bounded: at most CHUNK_BYTES characters (plus one line) are held before they are written.
      this.#pending.push(chunk);
      this.#pendingLength += chunk.length;
      if (this.#pendingLength >= HashedFile.CHUNK_BYTES) await this.#flush();
      return;
    }
    await this.#flush();
    await this.#emit(chunk);
  }
  async #flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const b = Buffer.from(this.#pending.join(''));
    this.#pending = [];
    this.#pendingLength = 0;
    await this.#emit(b);
  }
  async #emit(b: Buffer): Promise<void> {
    this.#hash.update(b);
    this.bytes += b.length;
    // once() rejects if the file fails instead (a plain 'drain' listener would wait for ever).
    if (!this.#out.write(b)) await once(this.#out, 'drain');
  }
  /** Gives up the file (after a failure): closes it without a hash; the partial file stays. */
  async abort(): Promise<void> {
    this.#pending = [];
    if (this.#out.closed) return;
    const closed = once(this.#out, 'close').catch(() => undefined);
    this.#out.destroy();
    await closed;
  }
  async close(): Promise<FileEntry> {
    await this.#flush();
    await new Promise<void>((res, rej) => this.#out.end((err?: Error | null) => (err ? rej(err) : res())));
    return { sha256: this.#hash.digest('hex'), bytes: this.bytes };
  }
}

const fileName = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');

export interface ExportResult {
  dir: string;
  manifest: SignedManifest;
}

/**
 * Exports every store of `tenant` into `out` (a new or empty directory): `postgres/<table>.ndjson`,
 * `audit/<day>.jsonl` (the tenant's hash-chained stream, as stored) and `audit/verification.json`,
 * then `manifest.json`, signed.
 */
export async function exportTenant(
  stores: Stores,
  tenantId: string,
  out: string,
  progress: Progress = noProgress,
): Promise<ExportResult> {
  // Every store where the tenant is placed now; refused (nothing written) while a move is unfinished.
  const s = await placedStores(stores, tenantId);
  const key = await readSigningKey(s.cfg.signingKey);
  await mkdir(out, { recursive: true });
  if ((await readdir(out)).length > 0) throw cliError('CLI_USAGE', `--out ${out}: not empty`);
  const started = new Date().toISOString();
  const files: Record<string, FileEntry> = {};
  const pgCounts: Record<string, number> = {};
  const counts: Record<string, Record<string, number>> = { postgres: pgCounts };
  const tenant = await s.tenant(tenantId);
  if (progress.shown) {
    const totals = await countAll(s, tenantId);
    for (const [store, parts] of Object.entries(totals)) {
      progress.start(
        store,
        Object.values(parts).reduce((a, b) => a + b, 0),
      );
    }
  }

  // Postgres: one file per table, rows streamed through a cursor in one snapshot.
  await mkdir(join(out, 'postgres'));
  const open = new Map<string, HashedFile>();
  for (const t of s.cfg.postgres.tables) {
    open.set(t.name, new HashedFile(join(out, 'postgres', `${fileName(t.name)}.ndjson`)));
    pgCounts[t.name] = 0;
  }
  try {
    for await (const { table, row } of s.postgres.export(tenant)) {
      await (open.get(table) as HashedFile).write(`${JSON.stringify(row)}\n`);
      pgCounts[table] = (pgCounts[table] ?? 0) + 1;
      progress.tick('postgres');
    }
  } catch (err) {
    throw cliError('CLI_STORE_FAILED', `postgres export failed (${(err as Error).message})`, { cause: err });
  } finally {
    for (const [name, f] of open) files[`postgres/${fileName(name)}.ndjson`] = await f.close();
  }

  // S3: each object as a file (numbered in listing order, so no key can name a path outside the
  // export), and s3/objects.ndjson mapping each key to its file, size, type, metadata and time.
  // Several objects are fetched at once (dsar.s3.concurrency); then the tenant is listed again.
  if (s.s3) {
    let done: ObjectsExported;
    try {
      done = await exportObjects(s.s3, tenant, allKeys, out, files, s3Concurrency(s.cfg), () => progress.tick('s3'));
      await checkRecount(s.s3, tenant, done);
    } catch (err) {
      throw cliError('CLI_STORE_FAILED', `s3 export failed (${(err as Error).message})`, { cause: err });
    }
    counts.s3 = { objects: done.objects };
  }

  // Qdrant: every point of the tenant (id, payload, vectors if configured), paged.
  if (s.qdrant) {
    await mkdir(join(out, 'qdrant'));
    const f = new HashedFile(join(out, 'qdrant', 'points.ndjson'));
    let n = 0;
    try {
      for await (const p of s.qdrant.tenantData(tenant).export({ withVectors: s.cfg.qdrant?.withVectors ?? false })) {
        await f.write(`${JSON.stringify(p)}\n`);
        n++;
        progress.tick('qdrant');
      }
    } catch (err) {
      throw cliError('CLI_STORE_FAILED', `qdrant export failed (${(err as Error).message})`, { cause: err });
    } finally {
      files['qdrant/points.ndjson'] = await f.close();
    }
    counts.qdrant = { points: n };
  }

  // Secrets: names only, never values.
  if (s.secrets) {
    await mkdir(join(out, 'secrets'));
    const f = new HashedFile(join(out, 'secrets', 'names.ndjson'));
    let names: { name: string }[];
    try {
      names = (await s.secrets.exportTenant(tenant)).secrets;
    } catch (err) {
      await f.close();
      throw cliError('CLI_STORE_FAILED', `secrets export failed (${(err as Error).message})`, { cause: err });
    }
    for (const n of names) await f.write(`${JSON.stringify({ name: n.name })}\n`);
    progress.tick('secrets', names.length);
    files['secrets/names.ndjson'] = await f.close();
    counts.secrets = { names: names.length };
  }

  // Audit: the tenant's stream as stored (so the chain can be re-verified), and its verification now.
  const audit = await exportAuditStream(s.audit, tenantId, out, 'audit');
  Object.assign(files, audit.files);
  const verification = await s.audit.verify(tenantId);
  const vf = new HashedFile(join(out, 'audit', 'verification.json'));
  await vf.write(`${JSON.stringify(verification, null, 2)}\n`);
  files['audit/verification.json'] = await vf.close();
  counts.audit = { events: audit.events, verified: verification.ok ? 1 : 0 };

  const manifest: Manifest = {
    format: EXPORT_FORMAT,
    tool: { name: '@tenantscope/cli', version: VERSION },
    tenant: tenantId,
    started_at: started,
    finished_at: new Date().toISOString(),
    counts,
    placement: s.placements,
    files,
  };
  await assertPlacementsUnchanged(s, tenantId, s.placements);
  return { dir: out, manifest: await writeSignedManifest(out, key, manifest) };
}

/** Signs `manifest` (Ed25519 over its canonical JSON) and writes `manifest.json`. */
export async function writeSignedManifest(out: string, key: KeyObject, manifest: Manifest): Promise<SignedManifest> {
  const signed: SignedManifest = {
    ...manifest,
    signature: {
      alg: 'Ed25519',
      key_sha256: keyFingerprint(key),
      value: sign(null, Buffer.from(canonicalJson(manifest)), key).toString('base64'),
    },
  };
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(signed, null, 2)}\n`, { flag: 'wx' });
  return signed;
}

export interface VerifyExportReport {
  ok: boolean;
  tenant: string | null;
  problems: string[];
  files: number;
}

async function sha256Of(src: AsyncIterable<Buffer>): Promise<FileEntry> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const c of src) {
    hash.update(c);
    bytes += c.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

async function text(src: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > MAX_MANIFEST_BYTES) throw new Error('manifest too large');
    parts.push(c);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** What an export holds: its manifest text and, per other file, its hash (or why it is not a plain file). */
interface Contents {
  manifest: string | undefined;
  files: Map<string, FileEntry | string>;
}

async function dirContents(dir: string): Promise<Contents> {
  const files = new Map<string, FileEntry | string>();
  let manifest: string | undefined;
  for (const name of await walk(dir)) {
    const path = join(dir, name);
    if (!(await lstat(path)).isFile()) files.set(name, 'not a file');
    else if (name === 'manifest.json') manifest = await text(createReadStream(path));
    else files.set(name, await sha256Of(createReadStream(path)));
  }
  return { manifest, files };
}

async function tarContents(path: string): Promise<Contents> {
  const files = new Map<string, FileEntry | string>();
  let manifest: string | undefined;
  await readTar(path, async (e) => {
    const name = e.name.replace(/^\.\//, '');
    if (files.has(name) || (name === 'manifest.json' && manifest !== undefined)) files.set(name, 'twice in the tar');
    else if (e.type !== 'file') files.set(name, 'not a file');
    else if (name === 'manifest.json') manifest = await text(e.body);
    else files.set(name, await sha256Of(e.body));
  });
  return { manifest, files };
}

/**
 * Checks an export (a directory or a `.tar`): the manifest's signature under `key`, every listed
 * file's size and SHA-256, and that no file was added. Every problem is listed. A tar is read as
 * a stream, once.
 */
export async function verifyExport(path: string, key: KeyObject): Promise<VerifyExportReport> {
  const problems: string[] = [];
  let got: Contents;
  try {
    got = isTar(path) && (await stat(path)).isFile() ? await tarContents(path) : await dirContents(path);
  } catch (err) {
    return { ok: false, tenant: null, problems: [`${path}: unreadable (${(err as Error).message})`], files: 0 };
  }
  let m: SignedManifest;
  try {
    m = JSON.parse(got.manifest ?? '') as SignedManifest;
  } catch {
    return { ok: false, tenant: null, problems: ['manifest.json: missing or not JSON'], files: 0 };
  }
  const { signature, ...body } = m;
  if (m.format !== EXPORT_FORMAT) problems.push(`manifest.json: unknown format ${JSON.stringify(m.format)}`);
  let sigOk = false;
  try {
    sigOk =
      signature?.alg === 'Ed25519' &&
      verify(null, Buffer.from(canonicalJson(body)), key, Buffer.from(String(signature.value), 'base64'));
  } catch {
    sigOk = false;
  }
  if (!sigOk) problems.push('manifest.json: signature does not verify with the given key');
  const listed = m.files && typeof m.files === 'object' ? m.files : {};
  for (const [name, want] of Object.entries(listed)) {
    if (name.split('/').includes('..') || name.startsWith('/')) {
      problems.push(`${name}: path outside the export`);
      continue;
    }
    const have = got.files.get(name);
    if (have === undefined || typeof have === 'string') problems.push(`${name}: missing`);
    else if (have.sha256 !== want.sha256 || have.bytes !== want.bytes) problems.push(`${name}: content changed`);
  }
  for (const [name, have] of got.files) {
    if (!(name in listed)) problems.push(`${name}: not in the manifest`);
    else if (typeof have === 'string') problems.push(`${name}: ${have}`);
  }
  return {
    ok: problems.length === 0,
    tenant: typeof m.tenant === 'string' ? m.tenant : null,
    problems,
    files: Object.keys(listed).length,
  };
}
