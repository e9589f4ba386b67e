/**
 * Tenant data operations for data-subject requests: count, streamed export and delete-all of one
 * tenant's prefix, each checked by a recount. They run through the same scoped client as tools
 * (same prefix, same key checks), so they can never reach another tenant's objects. Halt the
 * tenant first: writes during an export or delete make the recount differ, which is reported as
 * `S3_DSAR_MISMATCH` rather than ignored.
 */
import type { Readable } from 'node:stream';
import type { DeleteResult, StoreCount, TenantDataOps } from '@tenantscope/core';
import type { TenantS3 } from './client.ts';
import { s3Error } from './errors.ts';

export interface TenantCount {
  objects: number;
  bytes: number;
}

/** One object handed to an export writer. Consume `body` before returning. */
export interface ExportedObject {
  /** Key relative to the tenant. */
  key: string;
  size: number;
  contentType: string | undefined;
  metadata: Record<string, string>;
  lastModified: Date | undefined;
  body: Readable;
}

export interface ExportResult extends TenantCount {
  /** The count taken after the export; equal to what was exported, or the export throws. */
  recount: TenantCount;
}

export interface DeleteAllResult {
  /** Objects deleted. */
  deleted: number;
  /** Objects left after deleting; always 0, or delete-all throws. */
  recount: number;
}

/**
 * @deprecated use `scopedS3(...).tenantData(tenant)` (a verified Tenant), which gives
 * `count()`, `export()` (an async iterable) and `delete()` like every other adapter.
 */
export class TenantData {
  readonly #files: TenantS3;

  /** @internal Use `scopedS3(...).tenantData(tenant)`. */
  constructor(files: TenantS3) {
    this.#files = files;
  }

  /** The tenant this operates on. */
  get tenantId(): string {
    return this.#files.tenantId;
  }

  async #countOnce(): Promise<TenantCount> {
    const c = { objects: 0, bytes: 0 };
    for await (const o of this.#files.iterate()) {
      c.objects++;
      c.bytes += o.size;
    }
    return c;
  }

  /** Objects and bytes under the tenant's prefix, counted twice; throws if the two passes differ. */
  async count(): Promise<TenantCount> {
    const first = await this.#countOnce();
    const second = await this.#countOnce();
    if (first.objects !== second.objects || first.bytes !== second.bytes) {
      throw s3Error('S3_DSAR_MISMATCH', 'tenant data changed while counting; halt the tenant and retry', {
        details: { first, second },
      });
    }
    return second;
  }

  /**
   * Streams every object to `write`, one at a time (only one body is open at once). Afterwards
   * recounts and throws `S3_DSAR_MISMATCH` if the count differs from what was exported.
   */
  async export(write: (object: ExportedObject) => Promise<void>): Promise<ExportResult> {
    const done = { objects: 0, bytes: 0 };
    for await (const info of this.#files.iterate()) {
      const got = await this.#files.get(info.key);
      await write({
        key: info.key,
        size: got.size,
        contentType: got.contentType,
        metadata: got.metadata,
        lastModified: got.lastModified,
        body: got.body,
      });
      if (!got.body.readableEnded) got.body.destroy();
      done.objects++;
      done.bytes += got.size;
    }
    return { ...done, recount: await this.checkExported(done) };
  }

  /** @internal Recounts; throws `S3_DSAR_MISMATCH` unless the recount equals what was exported. */
  async checkExported(done: TenantCount): Promise<TenantCount> {
    const recount = await this.#countOnce();
    if (recount.objects !== done.objects || recount.bytes !== done.bytes) {
      throw s3Error('S3_DSAR_MISMATCH', 'export incomplete: the recount differs from what was exported', {
        details: { exported: done, recount },
      });
    }
    return recount;
  }

  /** Deletes every object under the tenant's prefix, then recounts; throws unless 0 remain. */
  async deleteAll(): Promise<DeleteAllResult> {
    let deleted = 0;
    for (let round = 0; round < 1_000_000; round++) {
      const page = await this.#files.list({ limit: 1000 });
      if (page.objects.length === 0) break;
      const r = await this.#files.deleteMany(page.objects.map((o) => o.key));
      deleted += r.deleted.length;
      if (r.errors.length > 0) {
        throw s3Error('S3_DSAR_MISMATCH', `delete-all: the server refused ${r.errors.length} deletes`, {
          details: { codes: [...new Set(r.errors.map((e) => e.code))] },
        });
      }
    }
    const recount = (await this.#countOnce()).objects;
    if (recount !== 0) {
      throw s3Error('S3_DSAR_MISMATCH', `delete-all incomplete: ${recount} objects remain`, { details: { recount } });
    }
    return { deleted, recount };
  }
}

/** `TenantData` under the shared contract: `StoreCount`s, an async-iterable export, delete with before/after. */
export class S3TenantData implements TenantDataOps<ExportedObject> {
  readonly store = 's3';
  readonly #data: TenantData;
  readonly #files: TenantS3;

  /** @internal Built by `scopedS3(...).tenantData(tenant)`. */
  constructor(data: TenantData, files: TenantS3) {
    this.#data = data;
    this.#files = files;
  }

  /** Objects (the total) and bytes under the tenant's prefix, counted twice; throws if the two passes differ. */
  async count(): Promise<StoreCount> {
    return storeCount(await this.#data.count());
  }

  /**
   * Every object, one at a time: consume `body` before asking for the next (an unread body is
   * closed). Afterwards recounts and throws `S3_DSAR_MISMATCH` if it differs from what was exported.
   */
  async *export(): AsyncGenerator<ExportedObject> {
    const done = { objects: 0, bytes: 0 };
    for await (const info of this.#files.iterate()) {
      const got = await this.#files.get(info.key);
      try {
        yield {
          key: info.key,
          size: got.size,
          contentType: got.contentType,
          metadata: got.metadata,
          lastModified: got.lastModified,
          body: got.body,
        };
      } finally {
        if (!got.body.readableEnded) got.body.destroy();
      }
      done.objects++;
      done.bytes += got.size;
    }
    await this.#data.checkExported(done);
  }

  /** Deletes every object under the tenant's prefix; throws `S3_DSAR_MISMATCH` unless the recount is 0. */
  async delete(): Promise<DeleteResult> {
    const before = await this.count();
    await this.#data.deleteAll();
    return { before, after: storeCount({ objects: 0, bytes: 0 }) };
  }
}

function storeCount(c: TenantCount): StoreCount {
  return { store: 's3', total: c.objects, parts: { objects: c.objects, bytes: c.bytes } };
}
