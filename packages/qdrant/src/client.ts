import type { QdrantClient, Schemas } from '@qdrant/js-client-rest';
import {
  assertTenant,
  type DeleteResult,
  type ResourceProvider,
  type ScopedAdapter,
  type StoreCount,
  type Tenant,
  type TenantDataOps,
  TenantScopeError,
} from '@tenantscope/core';
import { qdrantError, wrapDriverError } from './errors.ts';
import {
  checkPlacement,
  type QdrantPlacement,
  type QdrantPlacementInput,
  type QdrantPlacementResolver,
  type QdrantTenantPlacementResolver,
  samePlace,
  sharedPlacement,
} from './placement.ts';
import {
  checkFilter,
  checkNotTenantPath,
  checkPayload,
  checkPointId,
  checkPointIds,
  type ExampleIds,
  type Filter,
  forceIdfCorpus,
  idKey,
  isPlainObject,
  type PointId,
  scopeFilter,
  scopeQueryRequest,
  type TenantCondition,
  tenantCondition,
  vectorsUsed,
} from './scope.ts';
import { routedToShardKey } from './shard-key.ts';

export interface ScopedQdrantOptions {
  /** The shared collection that holds every tenant's points (placement "shared"). */
  collection: string;
  /** Payload field holding the tenant id. It is forced on every write and filtered on every read. Default `tenant_id`. */
  tenantField?: string;
  /**
   * Where a tenant's points live. Default: every tenant in `collection`, separated by the tenant
   * filter. `dedicatedCollections(...)` gives some tenants a collection of their own (the filter
   * stays on there too); `shardKeyTier(...)` gives them their own shard key in a custom-sharded
   * collection (`shard_key` on every request, the filter still on). Resolved at the start of
   * every operation (sync or async), so a handle kept across a move follows it.
   */
  placement?: QdrantPlacementResolver;
  /**
   * The same, as a core `PlacementResolver` that takes the tenant (`{ id }`): the placement
   * registry's `registry.resolver('qdrant', registryPlacement(...))`. Give this or `placement`,
   * not both. Resolved at the start of every operation and again immediately before every write
   * is sent: a write whose place changed meanwhile is not sent (`PLACEMENT_PAUSED`, retry).
   */
  placementResolver?: QdrantTenantPlacementResolver;
  /**
   * Collections that `lookup_from` may name. Each must hold the same tenant field: example ids
   * looked up there are ownership-checked in that collection. Default: none (lookup_from refused).
   */
  lookupCollections?: readonly string[];
  /** Most ids accepted in one call (retrieve, delete, examples, upsert). Default 1000. */
  maxIds?: number;
  /** Page size of the DSAR export's scroll. Default 256. */
  exportPageSize?: number;
  /**
   * How long (ms) the collection's sparse-vector config (which vectors use the IDF modifier) is
   * cached before a query on a named vector reads it again. Default 5000. A vector switched to
   * the IDF modifier is treated as one without it for at most this long.
   */
  collectionInfoTtlMs?: number;
}

/** Arguments of the wrapped client methods, minus what the scope decides (shard_key, wait). */
type Args<M extends keyof QdrantClient> = QdrantClient[M] extends (c: string, a: infer A, ...r: never[]) => unknown
  ? Omit<NonNullable<A>, 'shard_key' | 'wait'>
  : never;
type Result<M extends keyof QdrantClient> = QdrantClient[M] extends (...a: never[]) => Promise<infer R> ? R : never;

export type QueryArgs = Args<'query'>;
export type QueryGroupsArgs = Args<'queryGroups'>;
export type ScrollArgs = Args<'scroll'>;
export type CountArgs = Args<'count'>;
export type FacetArgs = Args<'facet'>;
export type SearchMatrixArgs = Args<'searchMatrixPairs'>;
/** Legacy `search` (removed from client 1.19): a vector (or `{name, vector}`) plus filter. Sent as a query. */
export interface SearchArgs {
  vector: number[] | { name: string; vector: number[] };
  filter?: Filter;
  limit?: number;
  offset?: number;
  with_payload?: Schemas['WithPayloadInterface'];
  with_vector?: Schemas['WithVector'];
  params?: Schemas['SearchParams'];
  score_threshold?: number;
  consistency?: Schemas['ReadConsistency'];
  timeout?: number;
}
export interface RetrieveArgs {
  ids: PointId[];
  with_payload?: Schemas['WithPayloadInterface'];
  with_vector?: Schemas['WithVector'];
  consistency?: Schemas['ReadConsistency'];
}
export interface UpsertArgs {
  /**
   * `upsert` (default) inserts new ids and updates the tenant's own points; `insert_only` never
   * changes an existing point; `update_only` never inserts (ids the tenant does not own are
   * skipped, as if missing). Sent to Qdrant too (needs Qdrant 1.17+).
   */
  update_mode?: 'upsert' | 'insert_only' | 'update_only';
  /** Points to write. Their payload gets the tenant field; a payload that sets another tenant is refused. */
  points?: Schemas['PointStruct'][];
  /** Column form; converted to points. */
  batch?: Schemas['Batch'];
  ordering?: Schemas['WriteOrdering'];
  timeout?: number;
}
/** Points by id, or by a filter (ANDed with the tenant), never both. */
export type Selector = { points: PointId[]; filter?: undefined } | { filter: Filter; points?: undefined };
export type WriteOpts = { ordering?: Schemas['WriteOrdering']; timeout?: number };
export type UpdateResult = Schemas['UpdateResult'];

type Version = readonly [number, number, number];
/** `update_filter` (on upsert and update_vectors) arrived in Qdrant 1.15.4. */
const WRITES_MIN: Version = [1, 15, 4];
/** `update_mode` on upsert arrived in Qdrant 1.17.0. */
const UPDATE_MODE_MIN: Version = [1, 17, 0];
/** `params.idf` (the sparse IDF corpus) arrived in Qdrant 1.19.0; older servers ignore it. */
const IDF_CORPUS_MIN: Version = [1, 19, 0];
const UPSERT_ARGS = new Set(['points', 'batch', 'ordering', 'timeout', 'update_mode', 'shard_key']);
const atLeast = (v: Version, min: Version) => (v[0] - min[0] || v[1] - min[1] || v[2] - min[2]) >= 0;

/**
 * The tenant-scoping factory around a `QdrantClient` you built. `forTenant(tenant)` gives the
 * client a tool uses; `provider()` plugs it in as `ctx.vectors`.
 */
export class ScopedQdrant implements ScopedAdapter<TenantQdrant, Schemas['Record']> {
  /** The shared collection. */
  readonly collection: string;
  /** The payload field that holds the tenant id. */
  readonly tenantField: string;
  /** The raw client, unscoped. Reach for it only on purpose (admin work, migrations). */
  readonly unscopedClient: QdrantClient;
  readonly #placement: (tenantId: string) => QdrantPlacementInput | Promise<QdrantPlacementInput>;
  readonly #lookup: ReadonlySet<string>;
  readonly #maxIds: number;
  readonly #exportPageSize: number;
  readonly #infoTtl: number;
  readonly #idfVectors = new Map<string, { at: number; names: Promise<ReadonlySet<string>> }>();
  #serverCheck: Promise<Version> | undefined;

  constructor(client: QdrantClient, options: ScopedQdrantOptions) {
    if (!client || typeof (client as { query?: unknown }).query !== 'function') {
      throw new TenantScopeError('INVALID_CONFIG', 'scopedQdrant needs a QdrantClient from @qdrant/js-client-rest');
    }
    if (typeof options?.collection !== 'string' || options.collection.length === 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'scopedQdrant needs a collection name');
    }
    const field = options.tenantField ?? 'tenant_id';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(field)) {
      throw new TenantScopeError('INVALID_CONFIG', 'tenantField must be a plain top-level payload key');
    }
    this.unscopedClient = client;
    this.collection = options.collection;
    this.tenantField = field;
    if (options.placement !== undefined && options.placementResolver !== undefined) {
      throw new TenantScopeError('INVALID_CONFIG', 'give placement or placementResolver, not both');
    }
    for (const [name, f] of [
      ['placement', options.placement],
      ['placementResolver', options.placementResolver],
    ] as const) {
      if (f !== undefined && typeof f !== 'function') {
        throw new TenantScopeError('INVALID_CONFIG', `${name} must be a function`);
      }
    }
    const byTenant = options.placementResolver;
    this.#placement = byTenant
      ? (id) => byTenant(Object.freeze({ id }))
      : (options.placement ?? sharedPlacement(options.collection));
    this.#lookup = new Set(options.lookupCollections ?? []);
    this.#maxIds = options.maxIds ?? 1000;
    this.#exportPageSize = options.exportPageSize ?? 256;
    this.#infoTtl = options.collectionInfoTtlMs ?? 5000;
  }

  /**
   * A client confined to one verified tenant. Throws NOT_A_TENANT for anything else. The placement
   * is resolved again at the start of every operation; a synchronous resolver's bad answer fails
   * here already, an async one is looked up now (warming its cache) and fails on the operation.
   */
  forTenant(tenant: Tenant): TenantQdrant {
    assertTenant(tenant, 'ScopedQdrant.forTenant');
    const id = tenant.id;
    const shared = this.collection;
    const resolve = (): QdrantPlacementInput | Promise<QdrantPlacementInput> => {
      try {
        const p = this.#placement(id);
        return isPromise(p) ? p.catch((err: unknown) => Promise.reject(resolverFailed(err))) : p;
      } catch (err) {
        throw resolverFailed(err);
      }
    };
    const client = new TenantQdrant(constructKey, this, id, {
      lookup: this.#lookup,
      maxIds: this.#maxIds,
      exportPageSize: this.#exportPageSize,
      ensureServer: (min, what) => this.#ensureServer(min, what),
      idfVectors: (collection) => this.#idfVectorsOf(collection),
      resolve,
      check: (input) =>
        checkPlacement(input, id, shared, () =>
          qdrantError('QDRANT_PLACEMENT_UNSUPPORTED', 'unknown placement: shared, collection or shard-key'),
        ),
    });
    return client;
  }

  /** Plugs the scoped client into tool handlers as a resource (e.g. `ctx.vectors`). */
  provider(): ResourceProvider<TenantQdrant> {
    return { forCall: (call) => this.forTenant(call.tenant) };
  }

  /**
   * Creates the tenant index (keyword, `is_tenant: true`) on the shared collection (or on a
   * dedicated one, named) if it is missing. Idempotent; refuses an existing index of another kind
   * on the tenant field.
   */
  async ensureTenantIndex(collection: string = this.collection): Promise<{ created: boolean }> {
    const info = await this.#raw('get collection', () => this.unscopedClient.getCollection(collection));
    const existing = (info.payload_schema as Record<string, { data_type?: string; params?: unknown }> | undefined)?.[
      this.tenantField
    ];
    if (existing) {
      const params = (existing.params ?? {}) as { is_tenant?: boolean };
      if (existing.data_type === 'keyword' && params.is_tenant === true) return { created: false };
      throw qdrantError(
        'QDRANT_INDEX_CONFLICT',
        `the tenant field already has a ${existing.data_type} index without is_tenant`,
      );
    }
    await this.#raw('create tenant index', () =>
      this.unscopedClient.createPayloadIndex(collection, {
        field_name: this.tenantField,
        field_schema: { type: 'keyword', is_tenant: true },
        wait: true,
      }),
    );
    return { created: true };
  }

  /**
   * DSAR operations for one tenant: exact count (`parts: { points }`), a streamed export (paged
   * scroll), and a delete that is verified by a recount.
   */
  tenantData(tenant: Tenant): QdrantTenantData {
    return new QdrantTenantData(this.forTenant(tenant).data);
  }

  /** Refuses (QDRANT_SERVER_UNSUPPORTED) unless the server is at least `min`; the version is read once. */
  async #ensureServer(min: Version, what: string): Promise<void> {
    this.#serverCheck ??= (async () => {
      const info = await this.#raw('version check', () => this.unscopedClient.versionInfo());
      const v = /^(\d+)\.(\d+)\.(\d+)/
        .exec(String(info.version ?? ''))
        ?.slice(1)
        .map(Number);
      return (v ?? [0, 0, 0]) as unknown as Version;
    })();
    this.#serverCheck.catch(() => {
      this.#serverCheck = undefined;
    });
    const v = await this.#serverCheck;
    if (!atLeast(v, min)) {
      throw qdrantError(
        'QDRANT_SERVER_UNSUPPORTED',
        `${what} needs Qdrant ${min.join('.')} or later; this server is ${v.join('.')} (or did not say its version)`,
      );
    }
  }

  /** Names of the sparse vectors of a collection that use the IDF modifier (cached for collectionInfoTtlMs). */
  #idfVectorsOf(collection: string): Promise<ReadonlySet<string>> {
    const now = Date.now();
    const hit = this.#idfVectors.get(collection);
    if (hit && now - hit.at < this.#infoTtl) return hit.names;
    if (this.#idfVectors.size >= 64) this.#idfVectors.clear();
    const names = (async () => {
      const info = await this.#raw('collection info', () => this.unscopedClient.getCollection(collection));
      const sparse = (info.config?.params?.sparse_vectors ?? {}) as Record<string, { modifier?: unknown } | null>;
      return new Set(Object.entries(sparse).flatMap(([n, p]) => (p?.modifier === 'idf' ? [n] : [])));
    })();
    names.catch(() => this.#idfVectors.delete(collection));
    this.#idfVectors.set(collection, { at: now, names });
    return names;
  }

  async #raw<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw wrapDriverError(err, operation);
    }
  }
}

/** Creates the tenant-scoping factory. See {@link ScopedQdrantOptions}. */
export function scopedQdrant(client: QdrantClient, options: ScopedQdrantOptions): ScopedQdrant {
  return new ScopedQdrant(client, options);
}

/** Where one operation goes. */
interface Where {
  readonly placement: QdrantPlacement;
  /** The raw client, routed to the tenant's shard key on that tier. */
  readonly client: QdrantClient;
  readonly collection: string;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

/** A resolver's own typed refusal (e.g. PLACEMENT_PAUSED) passes through; anything else is UNAVAILABLE. */
function resolverFailed(err: unknown): TenantScopeError {
  if (err instanceof TenantScopeError) return err;
  return new TenantScopeError('UNAVAILABLE', 'the placement of this tenant could not be resolved', { cause: err });
}

/** Only `ScopedQdrant.forTenant` (after `assertTenant`) may build a TenantQdrant. */
const constructKey = Symbol('tenantscope.qdrant.tenant-client');

interface Internals {
  /** The tenant's placement as the resolver answers it now (typed errors pass through, others UNAVAILABLE). */
  resolve(): QdrantPlacementInput | Promise<QdrantPlacementInput>;
  /** Validates a resolver's answer for this tenant (fails closed). */
  check(input: unknown): QdrantPlacement;
  lookup: ReadonlySet<string>;
  maxIds: number;
  exportPageSize: number;
  ensureServer(min: Version, what: string): Promise<void>;
  idfVectors(collection: string): Promise<ReadonlySet<string>>;
}

/**
 * A Qdrant client confined to one tenant. Every read carries the tenant condition at the top of
 * `must` (on the request and on every prefetch); every write forces the tenant payload and is
 * confined by the tenant condition; point ids of other tenants are never read, used as examples,
 * overwritten or deleted.
 */
export class TenantQdrant {
  /** The tenant this client is bound to. */
  readonly tenantId: string;
  /** DSAR operations for this tenant. */
  readonly data: TenantData;
  readonly #raw: QdrantClient;
  /** The place the last operation resolved (reused while the placement does not change). */
  #last: Where | undefined;
  readonly #cond: TenantCondition;
  readonly #field: string;
  readonly #internals: Internals;

  /** @internal Use `ScopedQdrant.forTenant`; any other caller gets NOT_A_TENANT. */
  constructor(key: symbol, scope: ScopedQdrant, tenantId: string, internals: Internals) {
    if (key !== constructKey) {
      throw new TenantScopeError(
        'NOT_A_TENANT',
        'a TenantQdrant comes only from ScopedQdrant.forTenant(verifiedTenant)',
      );
    }
    this.#raw = scope.unscopedClient;
    this.tenantId = tenantId;
    this.#field = scope.tenantField;
    this.#cond = tenantCondition(scope.tenantField, tenantId);
    this.#internals = internals;
    this.data = new TenantData(this, internals.exportPageSize, async () => {
      const w = await this.#at();
      await this.#write(w, 'dsar delete', () =>
        w.client.delete(w.collection, { filter: this.tenantFilter(), wait: true }),
      );
    });
    // A synchronous resolver's bad placement fails here, as before; an async one is looked up now
    // (warming its cache) and fails on the operation.
    const first = this.#at();
    if (isPromise(first)) first.catch(() => undefined);
    Object.freeze(this);
  }

  /**
   * Where the last operation went (with a synchronous resolver, also where the next one goes);
   * undefined until an async resolver has answered once. Every operation resolves it again.
   */
  get placement(): QdrantPlacement | undefined {
    return this.#last?.placement;
  }

  /** Where this tenant's points are now: the resolver's current answer, checked. */
  async resolvePlacement(): Promise<QdrantPlacement> {
    return (await this.#at()).placement;
  }

  /** The filter this client adds, for logging and tests. */
  tenantFilter(): Filter {
    return scopeFilter(this.#cond, undefined);
  }

  // ---------------------------------------------------------------- reads

  /** Universal query. Tenant filter on the request and every prefetch; example ids must be this tenant's. */
  async query(args: QueryArgs): Promise<Result<'query'>> {
    const w = await this.#at();
    const scoped = await this.#scopeQuery(w, args as Record<string, unknown>);
    return this.#run('query', () => w.client.query(w.collection, scoped as Parameters<QdrantClient['query']>[1]));
  }

  /** Several queries in one request, each scoped as `query`. */
  async queryBatch(args: {
    searches: QueryArgs[];
    consistency?: Schemas['ReadConsistency'];
    timeout?: number;
  }): Promise<Result<'queryBatch'>> {
    if (!isPlainObject(args) || !Array.isArray(args.searches) || args.searches.length === 0) {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'queryBatch needs a non-empty searches list');
    }
    const examples: ExampleIds = { byCollection: new Map() };
    const w = await this.#at();
    const scoped = args.searches.map((s) =>
      scopeQueryRequest(s as Record<string, unknown>, this.#cond, this.#internals.lookup, examples),
    );
    await this.#verifyExamples(w, examples);
    const searches = await Promise.all(scoped.map((s) => this.#confineIdf(w, s)));
    return this.#run('query batch', () =>
      w.client.queryBatch(w.collection, {
        searches: searches as Schemas['QueryRequest'][],
        consistency: args.consistency,
        timeout: args.timeout,
      }),
    );
  }

  /** Query grouped by a payload field. `with_lookup` is refused (it reads by group id without a filter). */
  async queryGroups(args: QueryGroupsArgs): Promise<Result<'queryGroups'>> {
    const w = await this.#at();
    const scoped = await this.#scopeQuery(w, args as Record<string, unknown>);
    return this.#run('query groups', () =>
      w.client.queryGroups(w.collection, scoped as Parameters<QdrantClient['queryGroups']>[1]),
    );
  }

  /**
   * The legacy search call (gone from client 1.19) for code written against it: sent as a
   * universal query with the same vector, filter and options.
   */
  async search(args: SearchArgs): Promise<Schemas['ScoredPoint'][]> {
    if (!isPlainObject(args)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'search needs an arguments object');
    const v = args.vector;
    const named = isPlainObject(v) && typeof v.name === 'string' && Array.isArray(v.vector);
    if (!named && !(Array.isArray(v) && v.every((x) => typeof x === 'number'))) {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'search.vector must be a dense vector or {name, vector}');
    }
    const res = await this.query({
      query: (named ? (v as { vector: number[] }).vector : v) as number[],
      using: named ? (v as { name: string }).name : undefined,
      filter: args.filter,
      limit: args.limit,
      offset: args.offset,
      with_payload: args.with_payload,
      with_vector: args.with_vector,
      params: args.params,
      score_threshold: args.score_threshold,
      consistency: args.consistency,
      timeout: args.timeout,
    });
    return res.points;
  }

  /** Pages through this tenant's points (optionally narrowed by a filter). */
  async scroll(args: ScrollArgs = {}): Promise<Result<'scroll'>> {
    this.#noShardKey(args);
    const { filter, ...rest } = args;
    const w = await this.#at();
    return this.#run('scroll', () => w.client.scroll(w.collection, { ...rest, filter: this.#scopedFilter(filter) }));
  }

  /**
   * Counts this tenant's points, always exactly: `exact: false` is overridden, because Qdrant's
   * estimate comes from index statistics over every tenant.
   */
  async count(args: CountArgs = {}): Promise<number> {
    this.#noShardKey(args);
    const w = await this.#at();
    const r = await this.#run('count', () =>
      w.client.count(w.collection, {
        exact: true,
        timeout: args.timeout,
        filter: this.#scopedFilter(args.filter),
      }),
    );
    return r.count;
  }

  /** Counts values of a payload key over this tenant's points (always exact counts, like `count`). */
  async facet(args: FacetArgs): Promise<Result<'facet'>> {
    this.#noShardKey(args);
    if (!isPlainObject(args) || typeof args.key !== 'string' || args.key.length === 0) {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'facet needs a key');
    }
    const { filter, ...rest } = args;
    const w = await this.#at();
    return this.#run('facet', () =>
      w.client.facet(w.collection, { ...rest, exact: true, filter: this.#scopedFilter(filter) }),
    );
  }

  /** Distance matrix (pairs) over a sample of this tenant's points. */
  async searchMatrixPairs(args: SearchMatrixArgs = {}): Promise<Result<'searchMatrixPairs'>> {
    const w = await this.#at();
    await this.#matrixNotOnIdf(w, args);
    const { filter, ...rest } = args;
    return this.#run('search matrix', () =>
      w.client.searchMatrixPairs(w.collection, { ...rest, filter: this.#scopedFilter(filter) }),
    );
  }

  /** Distance matrix (offsets) over a sample of this tenant's points. */
  async searchMatrixOffsets(args: SearchMatrixArgs = {}): Promise<Result<'searchMatrixOffsets'>> {
    const w = await this.#at();
    await this.#matrixNotOnIdf(w, args);
    const { filter, ...rest } = args;
    return this.#run('search matrix', () =>
      w.client.searchMatrixOffsets(w.collection, { ...rest, filter: this.#scopedFilter(filter) }),
    );
  }

  /**
   * Points by id: a filtered scroll on `has_id` plus the tenant, never the unfiltered
   * retrieve-by-id endpoint. Ids of other tenants come back exactly as ids that do not exist.
   */
  async retrieve(args: RetrieveArgs): Promise<Schemas['Record'][]> {
    if (!isPlainObject(args)) throw qdrantError('QDRANT_POINT_INVALID', 'retrieve needs {ids}');
    const ids = dedupe(checkPointIds(args.ids, this.#internals.maxIds));
    const w = await this.#at();
    const r = await this.#run('retrieve', () =>
      w.client.scroll(w.collection, {
        filter: scopeFilter(this.#cond, undefined, { has_id: ids }),
        limit: ids.length,
        with_payload: args.with_payload ?? true,
        with_vector: args.with_vector ?? false,
        consistency: args.consistency,
      }),
    );
    const byKey = new Map(r.points.map((p) => [idKey(p.id), p]));
    return ids.flatMap((id) => byKey.get(idKey(id)) ?? []);
  }

  // ---------------------------------------------------------------- writes

  /**
   * Inserts or replaces this tenant's points. The tenant field is forced into every payload; a
   * payload naming another tenant is refused before anything is sent. Existing points of other
   * tenants are never overwritten: the upsert carries `update_filter` = this tenant (Qdrant
   * 1.15.4+), so the server itself skips them. Ids found to belong to another tenant fail with
   * QDRANT_POINT_ID_CONFLICT; points this call newly inserted are removed again, and this tenant's
   * existing points in the same batch are left as they were (they are written only after the
   * new ids went through).
   */
  async upsert(args: UpsertArgs): Promise<UpdateResult> {
    const points = this.#pointsOf(args);
    const mode = (args as { update_mode?: unknown }).update_mode;
    if (mode !== undefined && mode !== 'upsert' && mode !== 'insert_only' && mode !== 'update_only') {
      throw qdrantError('QDRANT_POINT_INVALID', 'update_mode must be upsert, insert_only or update_only');
    }
    await this.#internals.ensureServer(WRITES_MIN, 'a scoped write (update_filter)');
    if (mode !== undefined) await this.#internals.ensureServer(UPDATE_MODE_MIN, 'update_mode');
    const ids = dedupe(points.map((p) => p.id));
    const w = await this.#at();
    const before = await this.#ownIds(w, ids);
    // Two phases, so a conflict changes nothing of this tenant's either: first the ids this tenant
    // does not own yet (new, or another tenant's, which update_filter makes the server skip), then,
    // only if none of them was taken, the updates of points it already owns.
    // update_only never inserts (ids the tenant does not own are skipped like missing ones, so a
    // foreign id gives no signal); insert_only never updates the tenant's existing points.
    const fresh = mode === 'update_only' ? [] : points.filter((p) => !before.has(idKey(p.id)));
    const owned = mode === 'insert_only' ? [] : points.filter((p) => before.has(idKey(p.id)));
    const send = (batch: typeof points) =>
      this.#write(w, 'upsert', () =>
        w.client.upsert(w.collection, {
          wait: true,
          ordering: args.ordering,
          timeout: args.timeout,
          points: batch,
          update_filter: this.tenantFilter(),
          ...(mode === undefined ? {} : { update_mode: mode }),
        } as Parameters<QdrantClient['upsert']>[1]),
      );
    let result: UpdateResult = { operation_id: null, status: 'completed' };
    if (fresh.length > 0) {
      result = await send(fresh);
      const freshIds = dedupe(fresh.map((p) => p.id));
      const after = await this.#ownIds(w, freshIds);
      const conflicts = freshIds.filter((id) => !after.has(idKey(id)));
      if (conflicts.length > 0) {
        const inserted = freshIds.filter((id) => after.has(idKey(id)));
        if (inserted.length > 0) await this.#deleteOwn(w, inserted);
        throw qdrantError(
          'QDRANT_POINT_ID_CONFLICT',
          `${conflicts.length} point id(s) are not available to this tenant`,
          {
            details: { ids: conflicts },
          },
        );
      }
    }
    if (owned.length > 0) result = await send(owned);
    return result;
  }

  /** Sets payload keys on this tenant's points (by ids or filter). The tenant field cannot be set. */
  async setPayload(
    args: Selector & WriteOpts & { payload: Record<string, unknown>; key?: string },
  ): Promise<UpdateResult> {
    const payload = checkPayload(args?.payload, this.#field, this.tenantId);
    if (Object.hasOwn(payload, this.#field)) {
      throw qdrantError('QDRANT_TENANT_FIELD', `payload may not set the tenant field ${JSON.stringify(this.#field)}`);
    }
    if (args.key !== undefined) checkNotTenantPath(args.key, this.#field, 'key');
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'set payload', () =>
      w.client.setPayload(w.collection, {
        payload,
        key: args.key,
        filter,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
      }),
    );
  }

  /** Replaces the payload of this tenant's points; the tenant field is kept. */
  async overwritePayload(args: Selector & WriteOpts & { payload: Record<string, unknown> }): Promise<UpdateResult> {
    const payload = { ...checkPayload(args?.payload, this.#field, this.tenantId), [this.#field]: this.tenantId };
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'overwrite payload', () =>
      w.client.overwritePayload(w.collection, {
        payload,
        filter,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
      }),
    );
  }

  /** Deletes payload keys from this tenant's points. The tenant field cannot be deleted. */
  async deletePayload(args: Selector & WriteOpts & { keys: string[] }): Promise<UpdateResult> {
    if (!Array.isArray(args?.keys) || args.keys.length === 0) {
      throw qdrantError('QDRANT_POINT_INVALID', 'keys must be a non-empty list');
    }
    const keys = args.keys.map((k) => checkNotTenantPath(k, this.#field, 'keys'));
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'delete payload', () =>
      w.client.deletePayload(w.collection, {
        keys,
        filter,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
      }),
    );
  }

  /** Clears the payload of this tenant's points, keeping only the tenant field. */
  async clearPayload(args: Selector & WriteOpts): Promise<UpdateResult> {
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'clear payload', () =>
      w.client.overwritePayload(w.collection, {
        payload: { [this.#field]: this.tenantId },
        filter,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
      }),
    );
  }

  /**
   * Updates vectors of this tenant's points. Every id must be this tenant's (else
   * QDRANT_POINT_NOT_FOUND and nothing is written); the request also carries
   * `update_filter` = this tenant, so a race cannot redirect it.
   */
  async updateVectors(args: WriteOpts & { points: Schemas['PointVectors'][] }): Promise<UpdateResult> {
    if (!isPlainObject(args) || !Array.isArray(args.points) || args.points.length === 0) {
      throw qdrantError('QDRANT_POINT_INVALID', 'points must be a non-empty list');
    }
    if (args.points.length > this.#internals.maxIds) throw qdrantError('QDRANT_POINT_INVALID', 'too many points');
    const points = args.points.map((p) => {
      if (!isPlainObject(p)) throw qdrantError('QDRANT_POINT_INVALID', 'each point must be {id, vector}');
      if (p.vector === undefined || p.vector === null)
        throw qdrantError('QDRANT_POINT_INVALID', 'each point needs a vector');
      return { id: checkPointId(p.id), vector: p.vector };
    });
    await this.#internals.ensureServer(WRITES_MIN, 'a scoped write (update_filter)');
    const ids = dedupe(points.map((p) => p.id));
    const w = await this.#at();
    const own = await this.#ownIds(w, ids);
    const missing = ids.filter((id) => !own.has(idKey(id)));
    if (missing.length > 0) {
      throw qdrantError('QDRANT_POINT_NOT_FOUND', `${missing.length} point(s) not found in this tenant`, {
        details: { ids: missing },
      });
    }
    return this.#write(w, 'update vectors', async () => {
      const res = await w.client.api().updateVectors({
        collection_name: w.collection,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
        points,
        update_filter: this.tenantFilter(),
      } as never);
      return (res.data as { result: UpdateResult }).result;
    });
  }

  /** Deletes named vectors from this tenant's points. */
  async deleteVectors(args: Selector & WriteOpts & { vector: string[] }): Promise<UpdateResult> {
    if (!Array.isArray(args?.vector) || args.vector.length === 0 || !args.vector.every((v) => typeof v === 'string')) {
      throw qdrantError('QDRANT_POINT_INVALID', 'vector must be a non-empty list of vector names');
    }
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'delete vectors', () =>
      w.client.deleteVectors(w.collection, {
        vector: args.vector,
        filter,
        wait: true,
        ordering: args.ordering,
        timeout: args.timeout,
      }),
    );
  }

  /** Deletes this tenant's points by ids or filter. Ids of other tenants are not touched. */
  async delete(args: Selector & WriteOpts): Promise<UpdateResult> {
    const filter = this.#selector(args);
    const w = await this.#at();
    return this.#write(w, 'delete', () =>
      w.client.delete(w.collection, { filter, wait: true, ordering: args.ordering, timeout: args.timeout }),
    );
  }

  // ---------------------------------------------------------------- internals

  #scopedFilter(filter: unknown): Filter {
    return scopeFilter(this.#cond, filter);
  }

  #noShardKey(args: unknown): void {
    if (args !== undefined && !isPlainObject(args)) {
      throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'arguments must be an object');
    }
    const sk = (args as { shard_key?: unknown } | undefined)?.shard_key;
    if (sk !== undefined && sk !== null) {
      throw qdrantError('QDRANT_SHARD_KEY_REFUSED', 'shard_key is chosen by the placement, not the caller');
    }
  }

  /** The filter for a points-or-filter selector: has_id and/or the caller filter, ANDed with the tenant. */
  #selector(args: Selector): Filter {
    if (!isPlainObject(args)) throw qdrantError('QDRANT_POINT_INVALID', 'give {points} or {filter}');
    this.#noShardKey(args);
    const hasPoints = args.points !== undefined && args.points !== null;
    const hasFilter = args.filter !== undefined && args.filter !== null;
    if (hasPoints === hasFilter) throw qdrantError('QDRANT_POINT_INVALID', 'give exactly one of points or filter');
    if (hasPoints)
      return scopeFilter(this.#cond, undefined, {
        has_id: dedupe(checkPointIds(args.points, this.#internals.maxIds, 'points')),
      });
    const f = checkFilter(args.filter);
    if (!f)
      throw qdrantError(
        'QDRANT_FILTER_INVALID',
        'an empty filter would select every point of the tenant; use data.delete()',
      );
    return scopeFilter(this.#cond, f);
  }

  #pointsOf(args: UpsertArgs): Schemas['PointStruct'][] {
    if (!isPlainObject(args)) throw qdrantError('QDRANT_POINT_INVALID', 'upsert needs {points} or {batch}');
    this.#noShardKey(args);
    if ((args as Record<string, unknown>).update_filter !== undefined) {
      throw qdrantError('QDRANT_POINT_INVALID', 'update_filter is set by the scope');
    }
    for (const [k, v] of Object.entries(args)) {
      if (v !== undefined && !UPSERT_ARGS.has(k)) {
        throw qdrantError('QDRANT_POINT_INVALID', `upsert has unknown argument ${JSON.stringify(k)}`);
      }
    }
    let raw: unknown[];
    if (Array.isArray(args.points) && args.batch === undefined) {
      raw = args.points;
    } else if (isPlainObject(args.batch) && args.points === undefined) {
      raw = batchToPoints(args.batch);
    } else {
      throw qdrantError('QDRANT_POINT_INVALID', 'give exactly one of points or batch');
    }
    if (raw.length === 0) throw qdrantError('QDRANT_POINT_INVALID', 'no points to upsert');
    if (raw.length > this.#internals.maxIds)
      throw qdrantError('QDRANT_POINT_INVALID', `more than ${this.#internals.maxIds} points`);
    return raw.map((p, i) => {
      if (!isPlainObject(p)) throw qdrantError('QDRANT_POINT_INVALID', `point ${i} must be {id, vector, payload?}`);
      for (const k of Object.keys(p)) {
        if (!['id', 'vector', 'payload'].includes(k)) {
          throw qdrantError('QDRANT_POINT_INVALID', `point ${i} has unknown field ${JSON.stringify(k)}`);
        }
      }
      if (p.vector === undefined || p.vector === null)
        throw qdrantError('QDRANT_POINT_INVALID', `point ${i} needs a vector`);
      const payload = checkPayload(p.payload, this.#field, this.tenantId, `point ${i} payload`);
      return {
        id: checkPointId(p.id, `point ${i} id`),
        vector: p.vector as Schemas['VectorStruct'],
        payload: { ...payload, [this.#field]: this.tenantId },
      };
    });
  }

  /** Which of these ids are this tenant's (a tenant-scoped scroll on has_id). */
  async #ownIds(w: Where, ids: PointId[]): Promise<Set<string>> {
    const r = await this.#run('ownership check', () =>
      w.client.scroll(w.collection, {
        filter: scopeFilter(this.#cond, undefined, { has_id: ids }),
        limit: ids.length,
        with_payload: false,
        with_vector: false,
      }),
    );
    return new Set(r.points.map((p) => idKey(p.id)));
  }

  async #deleteOwn(w: Where, ids: PointId[]): Promise<void> {
    await this.#write(w, 'delete', () =>
      w.client.delete(w.collection, {
        filter: scopeFilter(this.#cond, undefined, { has_id: ids }),
        wait: true,
      }),
    );
  }

  async #scopeQuery(w: Where, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!isPlainObject(args)) throw qdrantError('QDRANT_QUERY_UNSUPPORTED', 'query needs an arguments object');
    const examples: ExampleIds = { byCollection: new Map() };
    const scoped = scopeQueryRequest(args, this.#cond, this.#internals.lookup, examples);
    await this.#verifyExamples(w, examples);
    return this.#confineIdf(w, scoped);
  }

  /**
   * Sparse vectors with the IDF modifier score with document frequencies counted over a corpus
   * that defaults to the whole collection (every tenant). Every level searching such a vector
   * gets `params.idf.corpus` = this tenant; a server that predates the corpus (it would ignore
   * it) is refused.
   */
  async #confineIdf(w: Where, scoped: Record<string, unknown>): Promise<Record<string, unknown>> {
    const used = vectorsUsed(scoped);
    if (used.size === 0) return scoped;
    const idf = await this.#internals.idfVectors(w.collection);
    if (![...used].some((n) => idf.has(n))) return scoped;
    await this.#internals.ensureServer(IDF_CORPUS_MIN, 'a query on a sparse vector with the IDF modifier');
    return forceIdfCorpus(scoped, this.#cond, idf);
  }

  /** The distance matrix takes no search params, so its IDF corpus cannot be confined: refused on IDF vectors. */
  async #matrixNotOnIdf(w: Where, args: SearchMatrixArgs): Promise<void> {
    this.#noShardKey(args);
    const using = (args as { using?: unknown }).using;
    if (typeof using !== 'string') return;
    if ((await this.#internals.idfVectors(w.collection)).has(using)) {
      throw qdrantError('QDRANT_IDF_REFUSED', 'the search matrix cannot confine IDF statistics to the tenant');
    }
  }

  /**
   * Example ids (recommend, discover, context, nearest-by-id, relevance feedback) must be this
   * tenant's points in the collection they are looked up in. A foreign id is reported exactly like
   * a missing one.
   */
  async #verifyExamples(w: Where, examples: ExampleIds): Promise<void> {
    for (const [collection, all] of examples.byCollection) {
      const ids = dedupe(all);
      if (ids.length > this.#internals.maxIds) throw qdrantError('QDRANT_POINT_INVALID', 'too many example ids');
      const target = collection === '' ? w.collection : collection;
      const r = await this.#run('example check', () =>
        w.client.scroll(target, {
          filter: scopeFilter(this.#cond, undefined, { has_id: ids }),
          limit: ids.length,
          with_payload: false,
          with_vector: false,
        }),
      );
      const own = new Set(r.points.map((p) => idKey(p.id)));
      const missing = ids.filter((id) => !own.has(idKey(id)));
      if (missing.length > 0) {
        throw qdrantError('QDRANT_POINT_NOT_FOUND', `${missing.length} example point(s) not found in this tenant`, {
          details: { ids: missing },
        });
      }
    }
  }

  /**
   * Where this operation goes: the resolver's answer now, checked, with the client that routes
   * there. Resolved once per operation; every request of the operation uses it.
   */
  #at(): Where | Promise<Where> {
    const p = this.#internals.resolve();
    return isPromise(p) ? p.then((raw) => this.#whereOf(raw)) : this.#whereOf(p);
  }

  #whereOf(raw: QdrantPlacementInput): Where {
    const placement = this.#internals.check(raw);
    const last = this.#last;
    if (last && samePlace(last.placement, placement)) return last;
    const client =
      placement.kind === 'shard-key'
        ? routedToShardKey(this.#raw, placement.collection, placement.shardKey)
        : this.#raw;
    this.#last = { placement, client, collection: placement.collection };
    return this.#last;
  }

  /**
   * Sends a write of an operation that resolved `w`, after resolving the placement once more,
   * immediately before the request leaves: if the tenant's place changed meanwhile (a move
   * switched, or paused it), nothing is sent and the caller gets the retryable PLACEMENT_PAUSED.
   * So a write never lands in a place its tenant has left for longer than the resolver's own
   * staleness bound (the registry's cacheMs, milliseconds with LISTEN).
   */
  async #write<T>(w: Where, operation: string, fn: () => Promise<T>): Promise<T> {
    const now = await this.#at();
    if (!samePlace(now.placement, w.placement)) {
      throw new TenantScopeError(
        'PLACEMENT_PAUSED',
        `${operation}: this tenant's points were moved while the call ran; nothing was sent, retry`,
        { status: 503, details: { retryAfterMs: 100 } },
      );
    }
    return this.#run(operation, fn);
  }

  async #run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw wrapDriverError(err, operation);
    }
  }
}

/**
 * DSAR operations for one tenant's points.
 * @deprecated use `scopedQdrant(...).tenantData(tenant)` (the shared contract: `StoreCount`s, delete with before/after).
 */
export class TenantData {
  readonly #q: TenantQdrant;
  readonly #pageSize: number;
  readonly #deleteAll: () => Promise<void>;

  /** @internal Built by TenantQdrant. */
  constructor(q: TenantQdrant, pageSize: number, deleteAll: () => Promise<void>) {
    this.#q = q;
    this.#pageSize = pageSize;
    this.#deleteAll = deleteAll;
  }

  /** Exact number of this tenant's points. */
  count(): Promise<number> {
    return this.#q.count({ exact: true });
  }

  /** Streams every point of this tenant (payload, and vectors if asked) by paging a scroll. */
  async *export(options: { withVectors?: boolean; pageSize?: number } = {}): AsyncGenerator<Schemas['Record']> {
    const limit = options.pageSize ?? this.#pageSize;
    let offset: PointId | undefined;
    for (;;) {
      const page = await this.#q.scroll({
        limit,
        offset,
        with_payload: true,
        with_vector: options.withVectors ?? false,
      });
      for (const p of page.points) yield p;
      const next = page.next_page_offset;
      if (next === undefined || next === null) return;
      offset = next as PointId;
    }
  }

  /** Deletes every point of this tenant, then recounts; throws QDRANT_DSAR_INCOMPLETE unless the recount is 0. */
  async delete(): Promise<{ deleted: number; remaining: 0 }> {
    const before = await this.count();
    await this.#deleteAll();
    const remaining = await this.count();
    if (remaining !== 0) {
      throw qdrantError('QDRANT_DSAR_INCOMPLETE', `${remaining} point(s) remained after the delete`, {
        details: { remaining },
      });
    }
    return { deleted: before, remaining: 0 };
  }
}

function dedupe(ids: PointId[]): PointId[] {
  const seen = new Set<string>();
  return ids.filter((id) => {
    const k = idKey(id);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function batchToPoints(batch: Record<string, unknown>): unknown[] {
  const { ids, vectors, payloads } = batch;
  if (!Array.isArray(ids)) throw qdrantError('QDRANT_POINT_INVALID', 'batch.ids must be a list');
  if (payloads !== undefined && payloads !== null && (!Array.isArray(payloads) || payloads.length !== ids.length)) {
    throw qdrantError('QDRANT_POINT_INVALID', 'batch.payloads must match batch.ids');
  }
  let vectorAt: (i: number) => unknown;
  if (Array.isArray(vectors)) {
    if (vectors.length !== ids.length) throw qdrantError('QDRANT_POINT_INVALID', 'batch.vectors must match batch.ids');
    vectorAt = (i) => vectors[i];
  } else if (isPlainObject(vectors)) {
    for (const list of Object.values(vectors)) {
      if (!Array.isArray(list) || list.length !== ids.length) {
        throw qdrantError('QDRANT_POINT_INVALID', 'each named batch vector list must match batch.ids');
      }
    }
    vectorAt = (i) => Object.fromEntries(Object.entries(vectors).map(([n, list]) => [n, (list as unknown[])[i]]));
  } else {
    throw qdrantError('QDRANT_POINT_INVALID', 'batch.vectors must be a list or named lists');
  }
  return ids.map((id, i) => ({
    id,
    vector: vectorAt(i),
    ...(Array.isArray(payloads) && payloads[i] !== null && payloads[i] !== undefined ? { payload: payloads[i] } : {}),
  }));
}

/** One tenant's points under the shared DSAR contract (`TenantDataOps`). */
export class QdrantTenantData implements TenantDataOps<Schemas['Record']> {
  readonly store = 'qdrant';
  readonly #data: TenantData;

  /** @internal Built by `ScopedQdrant.tenantData`. */
  constructor(data: TenantData) {
    this.#data = data;
  }

  /** Exact number of the tenant's points. */
  async count(): Promise<StoreCount> {
    return pointCount(await this.#data.count());
  }

  /** Streams every point of the tenant (payload, and vectors if asked) by paging a scroll. */
  export(options: { withVectors?: boolean; pageSize?: number } = {}): AsyncGenerator<Schemas['Record']> {
    return this.#data.export(options);
  }

  /** Deletes every point of the tenant; throws QDRANT_DSAR_INCOMPLETE unless the recount is 0. */
  async delete(): Promise<DeleteResult> {
    const { deleted } = await this.#data.delete();
    return { before: pointCount(deleted), after: pointCount(0) };
  }
}

function pointCount(points: number): StoreCount {
  return { store: 'qdrant', total: points, parts: { points } };
}
