/**
 * Tar output for exports (`--out <file>.tar`). The export is written file by file into a sibling
 * working directory, then each file is streamed into the tar (with back-pressure; nothing is held
 * in memory) and the working directory removed. Reading a tar back (verify-export) is streamed too.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import { cliError } from '../errors.ts';

export const isTar = (path: string) => path.toLowerCase().endsWith('.tar');

/** Every file under `dir`, as '/'-joined paths relative to it (directories walked; links listed as is). */
export async function walk(dir: string, root = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p, root)));
    else out.push(relative(root, p).split(sep).join('/'));
  }
  return out.sort();
}

/** Streams every file of `dir` into a new tar at `tarPath`, manifest.json first. */
async function dirToTar(dir: string, tarPath: string): Promise<void> {
  const p = pack();
  const written = pipeline(p, createWriteStream(tarPath, { flags: 'wx' }));
  written.catch(() => undefined); // awaited below
  const names = await walk(dir);
  names.sort((a, b) => (a === 'manifest.json' ? -1 : b === 'manifest.json' ? 1 : a < b ? -1 : 1));
  for (const name of names) {
    const st = await lstat(join(dir, name));
    await new Promise<void>((resolve, reject) => {
      const entry = p.entry({ name, size: st.size, mode: 0o644, mtime: st.mtime, type: 'file' }, (err) =>
        err ? reject(err) : resolve(),
      );
      pipeline(createReadStream(join(dir, name)), entry).catch(reject);
    });
  }
  p.finalize();
  await written;
}

/**
 * Runs `write(dir)` into a directory: `out` itself, or for `out` ending in `.tar` a fresh sibling
 * directory that is then streamed into the tar and removed. `out.tar` must not exist.
 */
export async function withTarOut<T>(out: string, write: (dir: string) => Promise<T>): Promise<T> {
  if (!isTar(out)) return write(out);
  if (
    await lstat(out).then(
      () => true,
      () => false,
    )
  )
    throw cliError('CLI_USAGE', `--out ${out}: exists`);
  const work = join(dirname(out), `.${randomBytes(6).toString('hex')}.tenantscope-export`);
  try {
    const r = await write(work);
    await dirToTar(work, out);
    return r;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One entry of a tar, streamed: `type` from its header, `body` to be consumed (or ignored). */
export interface TarEntry {
  name: string;
  type: string;
  body: AsyncIterable<Buffer>;
}

/** Reads a tar entry by entry; `onEntry` must consume `body` or return (the rest is drained). */
export async function readTar(path: string, onEntry: (e: TarEntry) => Promise<void>): Promise<void> {
  const ex = extract();
  const src = createReadStream(path);
  src.on('error', (err) => ex.destroy(err));
  src.pipe(ex);
  for await (const entry of ex) {
    await onEntry({
      name: entry.header.name,
      type: entry.header.type ?? 'file',
      body: entry as unknown as AsyncIterable<Buffer>,
    });
    entry.resume();
  }
}
