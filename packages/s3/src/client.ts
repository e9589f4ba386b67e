import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  assertTenant,
  type CallInfo,
  DEFAULT_TENANT_ID_PATTERN,
  type ResourceProvider,
  type ScopedAdapter,
  type Tenant,
  type TenantDataOps,
  TenantScopeError,
} from '@tenantscope/core';
import { type VendedCredentialsOption, vendedClients } from './credentials.ts';
import { type ExportedObject, S3TenantData, TenantData } from './dsar.ts';
import { s3Error, wrapSdkError } from './errors.ts';
import { byteLength, checkKey, checkListPrefix } from './keys.ts';
import {
  checkPlacement,
  defaultPrefix,
  type PlacementResolver,
  type S3Placement,
  sharedBucket,
  type TenantRef,
} from './placement.ts';
import { createTokenSealer, type TokenSealer } from './tokens.ts';

export interface ScopedS3Options {
  /** The shared bucket every tenant's objects live in, each under its own prefix. */
  bucket: string;
  /**
   * The tenant's prefix inside the bucket. Must end in `/` and pass the key rule; must be a
   * function of the tenant id alone, and two tenants must never get nested prefixes.
   * Default: `tenants/<id>/`.
   */
  prefix?: (tenant: TenantRef) => string;
  /**
   * Placement resolver, the seam for dedicated buckets: when given, it decides bucket, prefix and
   * client per tenant and `bucket` / `prefix` are not used. Default: `sharedBucket(bucket, prefix)`.
   */
  placement?: PlacementResolver;
  /**
   * Secret (at least 32 bytes) that seals list continuation tokens. Give every replica the same one
   * so a token from one replica opens on another. Default: random per process (tokens then do not
   * survive a restart).
   */
  tokenSecret?: string | Uint8Array;
  /** How long a list continuation token stays valid, in seconds. Default 3600. */
  listTokenTtlSeconds?: number;
  /** Presigned URL expiry when the caller gives none, in seconds. Default 300 (5 minutes). */
  presignDefaultSeconds?: number;
  /** The longest presigned URL expiry a caller may ask for, in seconds. Default 3600. */
  presignMaxSeconds?: number;
  /**
   * Tenant-scoped credentials: every call of a tenant is signed with credentials whose policy
   * allows only its placement (`stsCredentials` or `tenantUserCredentials`), so the store refuses
   * what the scoped client would. Takes precedence over a placement's `client`. Default: every call
   * uses the client passed to `scopedS3` (the wall is this client alone).
   */
  credentials?: VendedCredentialsOption;
  /** Multipart part size in bytes (at least 5 MiB, the S3 minimum). Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded in parallel by a multipart upload. Default 4. */
  uploadConcurrency?: number;
  /**
   * The longest a single write request (`put` of text or bytes, `copy`, `delete`, `deleteMany`)
   * may take, in milliseconds; it is aborted after that. A write the store admitted just before a
   * `tenant move` fenced the place ends within it, so the move's `--settle-ms` must be at least this
   * (plus the placement cache's lifetime). Multipart and streamed uploads (`upload`, `put` of a
   * stream) are bounded by the S3Client's own `requestTimeout` per request instead. Default 30000.
   */
  writeTimeoutMs?: number;
}

/** A body for `put`/`upload`: text (stored as UTF-8), bytes, or a stream (Node or web). */
export type PutBody = string | Uint8Array | Readable | ReadableStream<Uint8Array>;

export interface PutOptions {
  /** Content-Type. Default `application/octet-stream` (`text/plain; charset=utf-8` for strings). */
  contentType?: string;
  /** User metadata (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
  /** Cache-Control. */
  cacheControl?: string;
  /** Content-Disposition. */
  contentDisposition?: string;
}

export interface UploadOptions extends PutOptions {
  /** Part size in bytes; default from `scopedS3` options. */
  partSize?: number;
  /** Parts in flight; default from `scopedS3` options. */
  concurrency?: number;
  /** Progress callback: bytes sent so far (and total, when known). */
  onProgress?: (progress: { loaded: number; total?: number }) => void;
}

export interface ObjectInfo {
  /** The key relative to the tenant prefix. */
  key: string;
  size: number;
  etag: string | undefined;
  lastModified: Date | undefined;
}

export interface HeadResult extends ObjectInfo {
  contentType: string | undefined;
  metadata: Record<string, string>;
}

/** The object headers GetObject and HeadObject both answer with. */
interface ObjectHeaders {
  ContentLength?: number;
  ContentType?: string;
  ETag?: string;
  LastModified?: Date;
  Metadata?: Record<string, string>;
}

function headResult(key: string, out: ObjectHeaders): HeadResult {
  return {
    key,
    size: out.ContentLength ?? 0,
    etag: out.ETag,
    lastModified: out.LastModified,
    contentType: out.ContentType,
    metadata: out.Metadata ?? {},
  };
}

export interface GetResult extends HeadResult {
  /** The object's bytes as a Node stream. Read it once (or use `text()` / `bytes()`). */
  body: Readable;
  /** Reads the whole body as UTF-8 text. */
  text(): Promise<string>;
  /** Reads the whole body. */
  bytes(): Promise<Uint8Array>;
}

export interface ListOptions {
  /** Only keys starting with this (relative to the tenant). Default: all. */
  prefix?: string;
  /** `/` to group keys into `folders`. */
  delimiter?: '/';
  /** At most this many entries per page (1–1000). Default 1000. */
  limit?: number;
  /** A `nextContinuationToken` from an earlier page of the same listing by the same tenant. */
  continuationToken?: string;
}

export interface ListResult {
  objects: ObjectInfo[];
  /** With `delimiter: '/'`: the folder prefixes (relative, ending in `/`). */
  folders: string[];
  /** Present when there are more pages. Sealed to this tenant and listing. */
  nextContinuationToken: string | undefined;
}

export interface DeleteManyResult {
  /** Keys (relative) the server reported deleted. */
  deleted: string[];
  /** Keys the server refused, with its error code. */
  errors: { key: string; code: string }[];
}

export interface PresignOptions {
  /** Seconds the URL stays valid; 1 … `presignMaxSeconds`. Default `presignDefaultSeconds` (300). */
  expiresIn?: number;
}

export interface PresignPutOptions extends PresignOptions {
  /** Content-Type the uploader must send (it is signed). */
  contentType?: string;
}

/** The scoped client as `scopedS3` returns it: a factory of per-tenant clients. */
export interface ScopedS3 extends ScopedAdapter<TenantS3, ExportedObject> {
  /** A client bound to one verified tenant. Throws `NOT_A_TENANT` for anything else. */
  forTenant(tenant: Tenant, options?: { signal?: AbortSignal }): TenantS3;
  /** Plugs in as `ctx.files`: `tenantScope({ providers: { files: s3.provider() } })`. */
  provider(): ResourceProvider<TenantS3>;
  /**
   * Operator-side data operations for one verified tenant (DSAR): count (`parts: { objects, bytes }`),
   * a streamed export (one object body open at a time) and a delete verified by a recount.
   */
  tenantData(tenant: Tenant): TenantDataOps<ExportedObject>;
  /** @deprecated pass the verified `Tenant`: `tenantData(tenant)` (count / export / delete). */
  tenantData(tenantId: string): TenantData;
  /** Where a tenant's objects live (a synchronous resolver only; INVALID_CONFIG for an async one). */
  placementOf(tenant: TenantRef): S3Placement;
  /** Where a tenant's objects live, with any resolver. */
  resolvePlacement(tenant: TenantRef): Promise<S3Placement>;
  /** The raw client, with no tenant scope. Reach for it only on purpose (migrations, admin). */
  readonly unscopedClient: S3Client;
}

const MIB = 1024 * 1024;

/**
 * Wraps an `S3Client` you built so every call is confined to one tenant's prefix.
 *
 * ```ts
 * const s3 = scopedS3(new S3Client({ ... }), { bucket: 'crm-files' });
 * const files = s3.forTenant(tenant); // a verified Tenant only
 * await files.put('notes/a.txt', 'hello'); // stored as tenants/<id>/notes/a.txt
 * ```
 */
export function scopedS3(client: S3Client, options: ScopedS3Options): ScopedS3 {
  if (!client || typeof (client as { send?: unknown }).send !== 'function') {
    throw new TenantScopeError('INVALID_CONFIG', 'scopedS3 needs an S3Client');
  }
  const resolver = options.placement ?? sharedBucket(options.bucket, options.prefix ?? defaultPrefix);
  const settings: Settings = {
    sealer: createTokenSealer(
      options.tokenSecret,
      positive(options.listTokenTtlSeconds ?? 3600, 'listTokenTtlSeconds'),
    ),
    presignDefault: positive(options.presignDefaultSeconds ?? 300, 'presignDefaultSeconds'),
    presignMax: positive(options.presignMaxSeconds ?? 3600, 'presignMaxSeconds'),
    partSize: options.partSize ?? 8 * MIB,
    concurrency: positive(options.uploadConcurrency ?? 4, 'uploadConcurrency'),
    writeTimeoutMs: positive(options.writeTimeoutMs ?? 30_000, 'writeTimeoutMs'),
  };
  if (settings.presignDefault > settings.presignMax) {
    throw new TenantScopeError('INVALID_CONFIG', 'presignDefaultSeconds must not exceed presignMaxSeconds');
  }
  if (!Number.isInteger(settings.partSize) || settings.partSize < 5 * MIB) {
    throw new TenantScopeError('INVALID_CONFIG', 'partSize must be an integer of at least 5 MiB');
  }

  const vended = options.credentials ? vendedClients(options.credentials, client) : undefined;
  /** Bucket, prefix and client of one placement; the last one per tenant is reused while it does not change. */
  const whereOf = (tenantId: string, raw: S3Placement, last: Where | undefined): Where => {
    const p = checkPlacement(raw);
    if (last && last.bucket === p.bucket && last.prefix === p.prefix && last.from === (p.client ?? client)) return last;
    return {
      client: vended ? vended(tenantId, p) : (p.client ?? client),
      from: p.client ?? client,
      bucket: p.bucket,
      prefix: p.prefix,
      prefixBytes: byteLength(p.prefix),
    };
  };
  const placementOf = (tenant: TenantRef): S3Placement => {
    const p = resolver({ id: tenant.id });
    if (isPromise(p)) {
      throw new TenantScopeError('INVALID_CONFIG', 'the placement resolver is async: use resolvePlacement(tenant)');
    }
    return checkPlacement(p);
  };
  const scope = (tenantId: string, signal?: AbortSignal): Scope => {
    let last: Where | undefined;
    const s: Scope = {
      tenantId,
      // Once per operation: a moved tenant's next call goes to the new place.
      where: () => {
        let p: S3Placement | Promise<S3Placement>;
        try {
          p = resolver({ id: tenantId });
        } catch (err) {
          throw resolverFailed(err);
        }
        if (!isPromise(p)) {
          last = whereOf(tenantId, p, last);
          return last;
        }
        return p.then(
          (raw) => {
            last = whereOf(tenantId, raw, last);
            return last;
          },
          (err) => {
            throw resolverFailed(err);
          },
        );
      },
      signal,
      settings,
    };
    // A synchronous resolver's bad placement fails here, at forTenant, as before; an async one
    // is looked up now (warming its cache) and fails on the operation.
    const first = s.where();
    if (isPromise(first)) first.catch(() => undefined);
    return s;
  };

  return {
    forTenant(tenant, opts = {}) {
      assertTenant(tenant, 'scopedS3().forTenant');
      return new TenantS3(constructKey, scope(tenant.id, opts.signal));
    },
    provider() {
      return {
        forCall: (call: CallInfo) => {
          assertTenant(call.tenant, 'scopedS3().provider');
          return new TenantS3(constructKey, scope(call.tenant.id, call.signal));
        },
      };
    },
    tenantData: ((tenant: Tenant | string) => {
      if (typeof tenant !== 'string') {
        assertTenant(tenant, 'scopedS3().tenantData');
        const files = new TenantS3(constructKey, scope(tenant.id));
        return new S3TenantData(new TenantData(files), files);
      }
      if (!DEFAULT_TENANT_ID_PATTERN.test(tenant)) {
        throw new TenantScopeError('INVALID_ARGUMENT', 'tenantData needs a tenant id');
      }
      return new TenantData(new TenantS3(constructKey, scope(tenant)));
    }) as ScopedS3['tenantData'],
    placementOf,
    async resolvePlacement(tenant: TenantRef) {
      return checkPlacement(await resolver({ id: tenant.id }));
    },
    get unscopedClient() {
      return client;
    },
  };
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) throw new TenantScopeError('INVALID_CONFIG', `${name} must be a positive integer`);
  return n;
}

interface Settings {
  sealer: TokenSealer;
  presignDefault: number;
  presignMax: number;
  partSize: number;
  concurrency: number;
  writeTimeoutMs: number;
}

/** @internal Where one operation goes: resolved from the placement at its start. */
export interface Where {
  client: S3Client;
  /** The placement's own client (or the default), before vending. */
  from: S3Client;
  bucket: string;
  prefix: string;
  prefixBytes: number;
}

/** @internal Everything a tenant client knows. Kept in a private field. */
export interface Scope {
  tenantId: string;
  /** The placement, resolved per operation (synchronously when the resolver is). */
  where(): Where | Promise<Where>;
  signal: AbortSignal | undefined;
  settings: Settings;
}

/** A resolver's own typed refusal (e.g. PLACEMENT_PAUSED) passes through; anything else is UNAVAILABLE. */
function resolverFailed(err: unknown): TenantScopeError {
  if (err instanceof TenantScopeError) return err;
  return new TenantScopeError('UNAVAILABLE', 'the placement of this tenant could not be resolved', { cause: err });
}

/** The store refused the request (AccessDenied), as `wrapSdkError` reports it. */
function isDenied(err: unknown): boolean {
  return (err as TenantScopeError)?.details?.s3Code === 'AccessDenied';
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === 'function';
}

/** Only `scopedS3(...)` (after `assertTenant`) may build a TenantS3. */
const constructKey = Symbol('tenantscope.s3.tenant-client');

/**
 * One tenant's view of the store. Every key is relative to the tenant prefix, goes through the
 * key rule, and every key the server returns is checked to be inside the prefix before it is
 * handed back (relative). Get one from `scopedS3(...).forTenant(tenant)` or as `ctx.files`.
 */
export class TenantS3 {
  readonly #scope: Scope;

  /** @internal Use `scopedS3(...).forTenant(tenant)`; any other caller gets NOT_A_TENANT. */
  constructor(key: symbol, scope: Scope) {
    if (key !== constructKey) {
      throw new TenantScopeError('NOT_A_TENANT', 'a TenantS3 comes only from scopedS3(...).forTenant(verifiedTenant)');
    }
    this.#scope = scope;
  }

  /** The tenant this client is bound to. */
  get tenantId(): string {
    return this.#scope.tenantId;
  }

  /** @internal Full key for a relative one, after the key rule. */
  #full(w: Where, key: unknown, what = 'key'): string {
    checkKey(key, w.prefixBytes, what);
    return w.prefix + key;
  }

  /** @internal Relative key for a full one from the server; refuses anything outside the prefix. */
  #relative(w: Where, full: string | undefined): string {
    if (typeof full !== 'string' || !full.startsWith(w.prefix) || full.length === w.prefix.length) {
      throw s3Error('S3_SCOPE_VIOLATION', 'the server returned a key outside the tenant prefix');
    }
    return full.slice(w.prefix.length);
  }

  async #send<T>(w: Where, operation: string, command: object, write = false): Promise<T> {
    const own = this.#scope.signal;
    let abortSignal = own;
    if (write) {
      const timeout = AbortSignal.timeout(this.#scope.settings.writeTimeoutMs);
      abortSignal = own ? AbortSignal.any([own, timeout]) : timeout;
    }
    try {
      return (await w.client.send(command as never, { abortSignal })) as T;
    } catch (err) {
      throw wrapSdkError(err, operation);
    }
  }

  /**
   * A write at the place the placement names. When the store refuses it (AccessDenied: e.g. a
   * `tenant move` fenced the place the tenant is leaving after this call resolved it), the
   * placement is resolved again: a paused tenant's resolver waits for the switch or fails with its
   * own retryable error (PLACEMENT_PAUSED); at a new place the write is sent once more (or, when
   * its body cannot be read twice, fails with the retryable S3_PLACEMENT_MOVED); at the same place
   * the refusal stands.
   */
  async #write<T>(first: Where, op: (w: Where) => Promise<T>, replayable = true): Promise<T> {
    try {
      return await op(first);
    } catch (err) {
      if (!isDenied(err)) throw err;
      const again = await this.#scope.where();
      if (again.bucket === first.bucket && again.prefix === first.prefix) throw err;
      if (!replayable) {
        throw s3Error('S3_PLACEMENT_MOVED', "the tenant's objects moved while this write was on its way; retry", {
          cause: err,
          details: { retryAfterMs: 0 },
        });
      }
      return op(again);
    }
  }

  /**
   * Stores an object. Strings and bytes go in one PUT; a stream of unknown length goes through
   * `@aws-sdk/lib-storage` (single PUT when small, multipart when large).
   */
  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<{ key: string; etag: string | undefined }> {
    const first = await this.#scope.where();
    this.#full(first, key);
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body instanceof Uint8Array ? body : null;
    if (bytes === null) return this.upload(key, body, options);
    const sent = headers(options, typeof body === 'string');
    const out = await this.#write(first, (w) =>
      this.#send<{ ETag?: string }>(
        w,
        'PutObject',
        new PutObjectCommand({
          Bucket: w.bucket,
          Key: this.#full(w, key),
          Body: bytes,
          ContentLength: bytes.byteLength,
          ...sent,
        }),
        true,
      ),
    );
    return { key, etag: out.ETag };
  }

  /** Uploads through `@aws-sdk/lib-storage` (multipart above one part). Aborts its parts on failure. */
  async upload(
    key: string,
    body: PutBody,
    options: UploadOptions = {},
  ): Promise<{ key: string; etag: string | undefined }> {
    const first = await this.#scope.where();
    this.#full(first, key);
    const Body = uploadBody(body);
    const partSize = options.partSize ?? this.#scope.settings.partSize;
    if (!Number.isInteger(partSize) || partSize < 5 * MIB) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'partSize must be an integer of at least 5 MiB');
    }
    const params = headers(options, typeof body === 'string');
    const once = async (w: Where) => {
      const abortController = new AbortController();
      const signal = this.#scope.signal;
      const onAbort = () => abortController.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const upload = new Upload({
        client: w.client,
        params: { Bucket: w.bucket, Key: this.#full(w, key), Body, ...params },
        partSize,
        queueSize: options.concurrency ?? this.#scope.settings.concurrency,
        leavePartsOnError: false,
        abortController,
      });
      if (options.onProgress) {
        const cb = options.onProgress;
        upload.on('httpUploadProgress', (p) => cb({ loaded: p.loaded ?? 0, total: p.total }));
      }
      try {
        return await upload.done();
      } catch (err) {
        throw wrapSdkError(err, 'Upload');
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    };
    // Text and bytes can be sent again at a new place; a stream is read once.
    const out = await this.#write(first, once, typeof Body === 'string' || Body instanceof Uint8Array);
    return { key, etag: out.ETag };
  }

  /** Reads an object. Throws `S3_NOT_FOUND` if the tenant has no object under that key. */
  async get(key: string, options: { range?: string } = {}): Promise<GetResult> {
    const w = await this.#scope.where();
    const Key = this.#full(w, key);
    const out = await this.#send<ObjectHeaders & { Body?: unknown }>(
      w,
      'GetObject',
      new GetObjectCommand({ Bucket: w.bucket, Key, Range: options.range }),
    );
    const body = toReadable(out.Body);
    const bytes = async () => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c as Uint8Array));
      return new Uint8Array(Buffer.concat(chunks));
    };
    return {
      ...headResult(key, out),
      body,
      bytes,
      text: async () => new TextDecoder().decode(await bytes()),
    };
  }

  /** Reads a whole object as UTF-8 text. */
  async getText(key: string): Promise<string> {
    return (await this.get(key)).text();
  }

  /** Reads a whole object's bytes. */
  async getBytes(key: string): Promise<Uint8Array> {
    return (await this.get(key)).bytes();
  }

  /** An object's size, type and metadata. Throws `S3_NOT_FOUND` if absent. */
  async head(key: string): Promise<HeadResult> {
    const w = await this.#scope.where();
    const Key = this.#full(w, key);
    const out = await this.#send<ObjectHeaders>(w, 'HeadObject', new HeadObjectCommand({ Bucket: w.bucket, Key }));
    return headResult(key, out);
  }

  /** True if the tenant has an object under that key. */
  async exists(key: string): Promise<boolean> {
    try {
      await this.head(key);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'S3_NOT_FOUND') return false;
      throw err;
    }
  }

  /** Deletes an object (no error if it does not exist, as in S3). */
  async delete(key: string): Promise<void> {
    const first = await this.#scope.where();
    this.#full(first, key);
    await this.#write(first, (w) =>
      this.#send(w, 'DeleteObject', new DeleteObjectCommand({ Bucket: w.bucket, Key: this.#full(w, key) }), true),
    );
  }

  /**
   * Deletes several objects. Every key is checked first; if any breaks the key rule, nothing is
   * sent and `S3_KEY_INVALID` names its index. Sent in batches of 1,000. Keys the store refused
   * (AccessDenied) are deleted once more at the tenant's new place if its placement changed.
   */
  async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    const first = await this.#scope.where();
    if (!Array.isArray(keys)) throw new TenantScopeError('INVALID_ARGUMENT', 'deleteMany needs an array of keys');
    keys.forEach((k, i) => {
      try {
        this.#full(first, k);
      } catch (err) {
        const e = err as TenantScopeError;
        throw s3Error('S3_KEY_INVALID', `deleteMany: key #${i}: ${e.message}; nothing was deleted`, {
          details: { ...e.details, index: i },
        });
      }
    });
    const unique = [...new Set(keys)];
    const result = await this.#deleteAt(first, unique);
    const denied = result.errors.filter((e) => e.code === 'AccessDenied');
    if (denied.length === 0) return result;
    const again = await this.#scope.where();
    if (again.bucket === first.bucket && again.prefix === first.prefix) return result;
    const retried = await this.#deleteAt(
      again,
      denied.map((e) => e.key),
    );
    return {
      deleted: [...result.deleted, ...retried.deleted],
      errors: [...result.errors.filter((e) => e.code !== 'AccessDenied'), ...retried.errors],
    };
  }

  /** Deletes (relative) keys at one place, in batches of 1,000. */
  async #deleteAt(w: Where, keys: readonly string[]): Promise<DeleteManyResult> {
    const unique = keys.map((k) => this.#full(w, k));
    const result: DeleteManyResult = { deleted: [], errors: [] };
    for (let i = 0; i < unique.length; i += 1000) {
      const batch = unique.slice(i, i + 1000);
      let out: { Deleted?: { Key?: string }[]; Errors?: { Key?: string; Code?: string }[] };
      try {
        out = await this.#send(
          w,
          'DeleteObjects',
          new DeleteObjectsCommand({
            Bucket: w.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: false },
          }),
          true,
        );
      } catch (err) {
        // Ceph RGW 16 checks DeleteObjects against the bucket ARN, so credentials scoped to a prefix
        // (vended) are refused the whole batch: delete the keys one by one instead, each checked
        // by the server against its own key.
        if (!isDenied(err)) throw err;
        out = await this.#deleteOneByOne(w, batch);
      }
      for (const d of out.Deleted ?? []) result.deleted.push(this.#relative(w, d.Key));
      for (const e of out.Errors ?? []) result.errors.push({ key: this.#relative(w, e.Key), code: e.Code ?? 'Error' });
    }
    return result;
  }

  async #deleteOneByOne(w: Where, keys: string[]) {
    const out = { Deleted: [] as { Key: string }[], Errors: [] as { Key: string; Code: string }[] };
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const Key = keys[next++] as string;
        try {
          await this.#send(w, 'DeleteObject', new DeleteObjectCommand({ Bucket: w.bucket, Key }), true);
          out.Deleted.push({ Key });
        } catch (err) {
          out.Errors.push({ Key, Code: String((err as TenantScopeError).details?.s3Code ?? 'Error') });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, keys.length) }, worker));
    return out;
  }

  /** Copies an object; both keys are inside this tenant. */
  async copy(from: string, to: string, options: PutOptions = {}): Promise<{ key: string; etag: string | undefined }> {
    const first = await this.#scope.where();
    this.#full(first, from, 'source key');
    this.#full(first, to, 'destination key');
    const replace = options.contentType !== undefined || options.metadata !== undefined;
    const sent = replace ? { MetadataDirective: 'REPLACE' as const, ...headers(options, false) } : {};
    const out = await this.#write(first, (w) => {
      const src = this.#full(w, from, 'source key');
      return this.#send<{ CopyObjectResult?: { ETag?: string } }>(
        w,
        'CopyObject',
        new CopyObjectCommand({
          Bucket: w.bucket,
          Key: this.#full(w, to, 'destination key'),
          // The copy source travels in a header the server URL-decodes once: encode every segment,
          // so a literal `%2e` in a key stays literal and cannot name another object.
          CopySource: `${w.bucket}/${src.split('/').map(encodeURIComponent).join('/')}`,
          ...sent,
        }),
        true,
      );
    });
    return { key: to, etag: out.CopyObjectResult?.ETag };
  }

  /** One page of the tenant's objects. Keys come back relative to the tenant. */
  async list(options: ListOptions = {}): Promise<ListResult> {
    const w = await this.#scope.where();
    const sub = options.prefix ?? '';
    checkListPrefix(sub, w.prefixBytes);
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'limit must be an integer from 1 to 1000');
    }
    if (options.delimiter !== undefined && options.delimiter !== '/') {
      throw new TenantScopeError('INVALID_ARGUMENT', 'delimiter must be "/"');
    }
    const Prefix = w.prefix + sub;
    const binding = JSON.stringify([this.#scope.tenantId, w.bucket, Prefix, options.delimiter ?? '']);
    const ContinuationToken =
      options.continuationToken === undefined
        ? undefined
        : this.#scope.settings.sealer.open(options.continuationToken, binding);
    const out = await this.#send<{
      Contents?: { Key?: string; Size?: number; ETag?: string; LastModified?: Date }[];
      CommonPrefixes?: { Prefix?: string }[];
      IsTruncated?: boolean;
      NextContinuationToken?: string;
    }>(
      w,
      'ListObjectsV2',
      new ListObjectsV2Command({
        Bucket: w.bucket,
        Prefix,
        Delimiter: options.delimiter,
        MaxKeys: limit,
        ContinuationToken,
      }),
    );
    return {
      objects: (out.Contents ?? []).map((o) => ({
        key: this.#relative(w, o.Key),
        size: o.Size ?? 0,
        etag: o.ETag,
        lastModified: o.LastModified,
      })),
      folders: (out.CommonPrefixes ?? []).map((p) => this.#relative(w, p.Prefix)),
      nextContinuationToken:
        out.IsTruncated && out.NextContinuationToken
          ? this.#scope.settings.sealer.seal(out.NextContinuationToken, binding)
          : undefined,
    };
  }

  /** Every object under a (relative) prefix, page by page. */
  async *iterate(options: Omit<ListOptions, 'continuationToken' | 'delimiter'> = {}): AsyncGenerator<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.list({ ...options, continuationToken: token });
      yield* page.objects;
      token = page.nextContinuationToken;
    } while (token);
  }

  #expiry(options: PresignOptions): number {
    const s = options.expiresIn ?? this.#scope.settings.presignDefault;
    if (!Number.isInteger(s) || s < 1 || s > this.#scope.settings.presignMax) {
      throw s3Error(
        'S3_PRESIGN_EXPIRY',
        `expiresIn must be an integer from 1 to ${this.#scope.settings.presignMax} seconds`,
      );
    }
    return s;
  }

  /** A presigned GET URL for one of the tenant's keys. Default expiry 5 minutes, capped. */
  async presignGet(key: string, options: PresignOptions = {}): Promise<string> {
    const w = await this.#scope.where();
    const Key = this.#full(w, key);
    const expiresIn = this.#expiry(options);
    try {
      return await getSignedUrl(w.client, new GetObjectCommand({ Bucket: w.bucket, Key }), {
        expiresIn,
      });
    } catch (err) {
      throw wrapSdkError(err, 'presign GetObject');
    }
  }

  /** A presigned PUT URL for one of the tenant's keys. Default expiry 5 minutes, capped. */
  async presignPut(key: string, options: PresignPutOptions = {}): Promise<string> {
    const w = await this.#scope.where();
    const Key = this.#full(w, key);
    const expiresIn = this.#expiry(options);
    try {
      return await getSignedUrl(
        w.client,
        new PutObjectCommand({ Bucket: w.bucket, Key, ContentType: options.contentType }),
        { expiresIn },
      );
    } catch (err) {
      throw wrapSdkError(err, 'presign PutObject');
    }
  }

  /** Logs and JSON show the tenant only. */
  toJSON(): { tenant_id: string } {
    return { tenant_id: this.#scope.tenantId };
  }
}

function headers(options: PutOptions, isText: boolean) {
  if (options.metadata !== undefined) {
    if (typeof options.metadata !== 'object' || options.metadata === null) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'metadata must be an object of strings');
    }
    for (const [k, v] of Object.entries(options.metadata)) {
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(k) || typeof v !== 'string' || /[^\x20-\x7e]/.test(v)) {
        throw new TenantScopeError(
          'INVALID_ARGUMENT',
          'metadata keys must be [A-Za-z0-9_-] and values printable ASCII',
        );
      }
    }
  }
  for (const [name, v] of [
    ['contentType', options.contentType],
    ['cacheControl', options.cacheControl],
    ['contentDisposition', options.contentDisposition],
  ] as const) {
    if (v !== undefined && (typeof v !== 'string' || /[^\x20-\x7e]/.test(v) || v.length > 1024)) {
      throw new TenantScopeError('INVALID_ARGUMENT', `${name} must be printable ASCII`);
    }
  }
  return {
    ContentType: options.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/octet-stream'),
    Metadata: options.metadata,
    CacheControl: options.cacheControl,
    ContentDisposition: options.contentDisposition,
  };
}

function uploadBody(body: unknown): string | Uint8Array | Readable {
  if (typeof body === 'string' || body instanceof Uint8Array || body instanceof Readable) return body;
  if (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream) {
    return Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  throw s3Error('S3_BODY_INVALID', 'body must be a string, bytes (Uint8Array) or a stream');
}

function toReadable(body: unknown): Readable {
  if (body instanceof Readable) return body;
  if (body && typeof body === 'object' && typeof (body as ReadableStream).getReader === 'function') {
    return Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  return Readable.from([]);
}
