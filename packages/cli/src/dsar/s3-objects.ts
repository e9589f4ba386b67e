/**
 * S3 objects into an export, several at a time. Keys come in listing order; at most `concurrency`
 * GETs are in flight, each body streamed through a hash straight into its own file (nothing is
 * held in memory but the streams' buffers, whatever the objects' sizes), and the index
 * (`s3/objects.ndjson`) and file numbers follow the listing order, so the export does not depend
 * on which GET finishes first. The first failure aborts what is in flight, waits for it, and
 * throws `CLI_STORE_FAILED` naming the object's key (relative to the tenant being exported).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tenant } from '@tenantscope/core';
import type { ScopedS3, TenantS3 } from '@tenantscope/s3';
import { pMapIterable, pMapSkip } from 'p-map';
import { cliError } from '../errors.ts';
import type { DsarConfig } from './config.ts';
import { type FileEntry, HashedFile } from './export.ts';

/** Objects fetched at once when `dsar.s3.concurrency` is not set. */
export const DEFAULT_S3_CONCURRENCY = 16;

/** What was exported: objects and the bytes of their bodies. */
export interface ObjectsExported {
  objects: number;
  bytes: number;
}

/** A scoped client whose calls all stop when the returned `abort` is called. */
function abortable(s3: ScopedS3, tenant: Tenant): { files: TenantS3; abort: () => void; signal: AbortSignal } {
  const ctl = new AbortController();
  return { files: s3.forTenant(tenant, { signal: ctl.signal }), abort: () => ctl.abort(), signal: ctl.signal };
}

/** The failure of one object, naming its key; an abort caused by an earlier failure stays as it is. */
function objectFailed(key: string, err: unknown): Error {
  return cliError('CLI_STORE_FAILED', `s3: object ${JSON.stringify(key)}: ${(err as Error).message}`, {
    cause: err,
  });
}

/**
 * Runs `map` over `keys` with at most `concurrency` at once and hands each result to `use` in the
 * order of `keys`. On a failure, stops, aborts and waits for every call in flight, then throws
 * the first failure.
 */
async function inOrder<R>(
  keys: AsyncIterable<string> | Iterable<string>,
  concurrency: number,
  map: (key: string, i: number, signal: AbortSignal) => Promise<R | typeof pMapSkip>,
  use: (r: R) => Promise<void> | void,
  abort: () => void,
  signal: AbortSignal,
): Promise<void> {
  const running = new Set<Promise<unknown>>();
  try {
    const results = pMapIterable(
      keys,
      (key, i) => {
        const p = map(key, i, signal);
        running.add(p);
        p.then(
          () => running.delete(p),
          () => running.delete(p),
        );
        return p;
      },
      { concurrency },
    );
    for await (const r of results) await use(r);
  } catch (err) {
    abort();
    await Promise.allSettled([...running]);
    throw err;
  }
}

/**
 * Exports the objects `keys` names (tenant-relative, in the order to number them) into
 * `out/s3/objects/<n>-<name>` and `out/s3/objects.ndjson`, adding each file to `written`.
 * `onObject` is called once per object, in order.
 */
export async function exportObjects(
  s3: ScopedS3,
  tenant: Tenant,
  keys: (files: TenantS3) => AsyncIterable<string> | Iterable<string>,
  out: string,
  written: Record<string, FileEntry>,
  concurrency: number,
  onObject: () => void = () => {},
): Promise<ObjectsExported> {
  const { files, abort, signal } = abortable(s3, tenant);
  await mkdir(join(out, 's3', 'objects'), { recursive: true });
  const index = new HashedFile(join(out, 's3', 'objects.ndjson'));
  const done: ObjectsExported = { objects: 0, bytes: 0 };
  try {
    await inOrder(
      keys(files),
      concurrency,
      async (key, i) => {
        const tail = (key.split('/').pop() ?? '').replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
        const name = `s3/objects/${String(i + 1).padStart(8, '0')}${tail ? `-${tail}` : ''}`;
        let f: HashedFile | undefined;
        try {
          const got = await files.get(key);
          // Without an error: a body that has already ended must not emit an 'error' nobody listens
          // to (that would crash the process); one still being read ends its loop with ERR_STREAM_PREMATURE_CLOSE.
          const onAbort = () => got.body.destroy();
          signal.addEventListener('abort', onAbort, { once: true });
          try {
            f = new HashedFile(join(out, name));
            for await (const chunk of got.body as AsyncIterable<Buffer>) await f.write(chunk);
            const entry = await f.close();
            f = undefined;
            if (entry.bytes !== got.size) {
              throw new Error(`read ${entry.bytes} bytes, the object has ${got.size}`);
            }
            const { size, contentType, metadata, lastModified } = got;
            const line = `${JSON.stringify({ key, file: name, size, contentType, metadata, lastModified })}\n`;
            return { name, entry, line };
          } finally {
            signal.removeEventListener('abort', onAbort);
            if (!got.body.readableEnded) got.body.destroy();
          }
        } catch (err) {
          await f?.abort();
          throw signal.aborted ? err : objectFailed(key, err);
        }
      },
      async (r) => {
        written[r.name] = r.entry;
        await index.write(r.line);
        done.objects++;
        done.bytes += r.entry.bytes;
        onObject();
      },
      abort,
      signal,
    );
  } finally {
    written['s3/objects.ndjson'] = await index.close();
  }
  return done;
}

/** Every key of the tenant, in listing order. */
export async function* allKeys(files: TenantS3): AsyncGenerator<string> {
  for await (const o of files.iterate()) yield o.key;
}

/**
 * The tenant's keys (listing order, under `prefix` if given) whose user metadata `field` equals
 * `value`, read with at most `concurrency` HEADs at once; an object without the field never matches.
 */
export async function keysByMetadata(
  s3: ScopedS3,
  tenant: Tenant,
  field: string,
  value: string,
  concurrency: number,
  max: number,
): Promise<string[]> {
  const { files, abort, signal } = abortable(s3, tenant);
  const found: string[] = [];
  await inOrder(
    allKeys(files),
    concurrency,
    async (key) => {
      try {
        return (await files.head(key)).metadata[field] === value ? key : pMapSkip;
      } catch (err) {
        throw signal.aborted ? err : objectFailed(key, err);
      }
    },
    (key) => {
      if (found.length >= max) throw cliError('CLI_STORE_FAILED', `s3: more than ${max} objects`);
      found.push(key);
    },
    abort,
    signal,
  );
  return found;
}

/** Lists the tenant's objects again; throws unless they are exactly what was exported. */
export async function checkRecount(s3: ScopedS3, tenant: Tenant, done: ObjectsExported): Promise<void> {
  const recount: ObjectsExported = { objects: 0, bytes: 0 };
  for await (const o of s3.forTenant(tenant).iterate()) {
    recount.objects++;
    recount.bytes += o.size;
  }
  if (recount.objects !== done.objects || recount.bytes !== done.bytes) {
    throw cliError(
      'CLI_STORE_FAILED',
      `s3: export incomplete: exported ${done.objects} objects (${done.bytes} bytes), the recount is ${recount.objects} (${recount.bytes} bytes); halt the tenant and retry`,
    );
  }
}

/** `dsar.s3.concurrency`, or the default. */
export const s3Concurrency = (cfg: DsarConfig): number => cfg.s3?.concurrency ?? DEFAULT_S3_CONCURRENCY;
