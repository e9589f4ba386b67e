/**
 * Moving a tenant's objects between the shared bucket and a bucket of its own. The prefix stays the
 * same on both tiers (as `tieredPlacement` keeps it), so keys do not change. Listings are merged
 * page by page in key order: memory stays bounded whatever the number of objects.
 */
import { createHash } from 'node:crypto';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { TierTarget } from '@tenantscope/postgres';
import type { Measure, StoreMover } from './run.ts';

/** Object bodies read at once by `measure`. */
const PARALLEL = 8;

/** S3 lists keys in UTF-8 byte order; JavaScript's `<` compares UTF-16 units. */
const before = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b)) < 0;

interface Listed {
  key: string;
  etag: string;
  size: number;
}

export class S3Mover implements StoreMover {
  readonly store = 's3' as const;
  readonly #client: S3Client;
  readonly #shared: string;
  readonly #prefix: string;

  /** `prefix`: the tenant's prefix (`tenants/<id>/`), the same in the shared and the dedicated bucket. */
  constructor(client: S3Client, sharedBucket: string, prefix: string) {
    this.#client = client;
    this.#shared = sharedBucket;
    this.#prefix = prefix;
  }

  #bucket(at: TierTarget): string {
    return at.tier === 'shared' ? this.#shared : (at.target as string);
  }

  async *#list(bucket: string): AsyncGenerator<Listed> {
    let token: string | undefined;
    do {
      const r = await this.#client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: this.#prefix, ContinuationToken: token, MaxKeys: 1000 }),
      );
      for (const o of r.Contents ?? []) {
        if (o.Key) yield { key: o.Key, etag: o.ETag ?? '', size: o.Size ?? 0 };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Count, and sha256 over every key and the sha256 of its body, in key order. Bodies are streamed,
   * `PARALLEL` at a time; the hashes are combined in listing order.
   */
  async measure(at: TierTarget): Promise<Measure> {
    const bucket = this.#bucket(at);
    const all = createHash('sha256');
    let n = 0;
    const window: Promise<string>[] = [];
    const take = async () => {
      all.update(await (window.shift() as Promise<string>));
      n++;
    };
    for await (const o of this.#list(bucket)) {
      window.push(this.#bodyHash(bucket, o.key).then((h) => `${o.key.slice(this.#prefix.length)}\0${h}\n`));
      if (window.length >= PARALLEL) await take();
    }
    while (window.length) await take();
    return { total: n, parts: { objects: { n, sum: all.digest('hex') } } };
  }

  async #bodyHash(bucket: string, key: string): Promise<string> {
    const got = await this.#client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const h = createHash('sha256');
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) h.update(chunk);
    return h.digest('hex');
  }

  /** Copies (server side, `PARALLEL` at a time) what is missing or different at `to`, then deletes what `from` does not have. */
  async copy(from: TierTarget, to: TierTarget): Promise<void> {
    const src = this.#bucket(from);
    const dst = this.#bucket(to);
    const a = this.#list(src);
    const b = this.#list(dst);
    let x = await a.next();
    let y = await b.next();
    const extra: string[] = [];
    const inFlight = new Set<Promise<void>>();
    let failed: unknown;
    const copy = async (key: string) => {
      const p = this.#copyOne(src, dst, key).catch((err) => {
        failed ??= err;
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= PARALLEL) await Promise.race(inFlight);
    };
    while ((!x.done || !y.done) && failed === undefined) {
      if (!x.done && (y.done || before(x.value.key, y.value.key))) {
        await copy(x.value.key);
        x = await a.next();
      } else if (!y.done && (x.done || before(y.value.key, x.value.key))) {
        extra.push(y.value.key);
        if (extra.length === 1000) await this.#delete(dst, extra.splice(0));
        y = await b.next();
      } else if (!x.done && !y.done) {
        if (x.value.etag !== y.value.etag || x.value.size !== y.value.size) await copy(x.value.key);
        x = await a.next();
        y = await b.next();
      }
    }
    await Promise.all(inFlight);
    if (failed !== undefined) throw failed;
    if (extra.length) await this.#delete(dst, extra);
  }

  async #copyOne(src: string, dst: string, key: string): Promise<void> {
    await this.#client.send(
      new CopyObjectCommand({
        Bucket: dst,
        Key: key,
        CopySource: `${src}/${key.split('/').map(encodeURIComponent).join('/')}`,
        MetadataDirective: 'COPY',
      }),
    );
  }

  async #delete(bucket: string, keys: string[]): Promise<void> {
    const r = await this.#client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
    );
    if (r.Errors?.length) throw new Error(`${r.Errors.length} objects could not be deleted`);
  }

  async wipe(at: TierTarget): Promise<void> {
    const bucket = this.#bucket(at);
    const batch: string[] = [];
    // Listing while deleting is safe: keys are collected a page ahead and deleted a page at a time.
    for await (const o of this.#list(bucket)) {
      batch.push(o.key);
      if (batch.length === 1000) await this.#delete(bucket, batch.splice(0));
    }
    if (batch.length) await this.#delete(bucket, batch);
  }

  async close(): Promise<void> {}
}
