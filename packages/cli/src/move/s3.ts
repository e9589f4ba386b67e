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
  ListBucketsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { TierTarget } from '@tenantscope/postgres';
import { fenceTenant, unfenceTenant } from '@tenantscope/s3';
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

export interface S3MoverOptions {
  /**
   * The user the move's fence exempts: the one these credentials belong to (it deletes the old copy
   * under the fence). Default: `TENANTSCOPE_S3_MOVER_USER`, else the owner ListBuckets reports for
   * the caller, which is the user name on Ceph RGW (on AWS set it: the owner there is a canonical id).
   */
  moverUser?: string;
  /** Test only: no fence (the behaviour before fences), to show what the fence prevents. */
  noFence?: boolean;
}

export class S3Mover implements StoreMover {
  readonly store = 's3' as const;
  readonly #client: S3Client;
  readonly #shared: string;
  readonly #prefix: string;
  readonly #tenant: string;
  readonly #options: S3MoverOptions;
  #moverUser: Promise<string> | undefined;

  /** `prefix`: the tenant's prefix (`tenants/<id>/`), the same in the shared and the dedicated bucket. */
  constructor(client: S3Client, sharedBucket: string, prefix: string, tenant: string, options: S3MoverOptions = {}) {
    this.#client = client;
    this.#shared = sharedBucket;
    this.#prefix = prefix;
    this.#tenant = tenant;
    this.#options = {
      moverUser: options.moverUser ?? process.env.TENANTSCOPE_S3_MOVER_USER,
      noFence: options.noFence ?? process.env.TENANTSCOPE_TEST_NO_S3_FENCE === '1',
    };
  }

  #exempt(): Promise<string> {
    const given = this.#options.moverUser;
    this.#moverUser ??= given
      ? Promise.resolve(given)
      : this.#client.send(new ListBucketsCommand({ MaxBuckets: 1 })).then((r) => {
          const id = r.Owner?.ID;
          // AWS answers a canonical id (64 hex digits), which no policy condition matches: the
          // fence would then refuse the mover too, and the old copy could not be deleted.
          if (!id || /^[0-9a-f]{64}$/.test(id)) {
            throw new Error('the mover user is not known: set TENANTSCOPE_S3_MOVER_USER (the IAM user name)');
          }
          return id;
        });
    return this.#moverUser;
  }

  /**
   * The store refuses the tenant's writes at `at` from now on: a Deny on its prefix (the whole
   * bucket when dedicated) for every principal but the mover's user, in the bucket's policy. The
   * fence stays after the move (the tenant does not live there any more); a move back lifts it.
   */
  async fence(at: TierTarget): Promise<void> {
    if (this.#options.noFence) return;
    await fenceTenant(
      this.#client,
      this.#tenant,
      { bucket: this.#bucket(at), prefix: this.#prefix },
      { exemptUser: await this.#exempt(), wholeBucket: at.tier === 'dedicated' },
    );
  }

  async unfence(at: TierTarget): Promise<void> {
    if (this.#options.noFence) return;
    await unfenceTenant(this.#client, this.#tenant, this.#bucket(at));
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
