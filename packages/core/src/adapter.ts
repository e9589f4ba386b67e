/**
 * The one adapter contract. Every store adapter (Postgres, S3, Qdrant, Secrets Manager, or a third
 * party's) has the same shape: a factory named after the raw client it wraps (`scoped<Raw>()`
 * returning `Scoped<Raw>`), a per-tenant handle `Tenant<Noun>` that only `forTenant(verifiedTenant)`
 * can build, a core `ResourceProvider`, and `tenantData(tenant)` for export and erasure.
 * `@tenantscope/testkit/adapter` holds the isolation suite every adapter runs against this shape.
 */
import type { ResourceProvider } from './context.ts';
import type { Tenant } from './tenant.ts';

/** Where a tenant's data lives: beside other tenants' (`shared`) or in a place of its own. */
export type Tier = 'shared' | 'dedicated';

/** Every store's placement result carries its tier; the rest is store-specific. */
export interface PlacementBase {
  readonly tier: Tier;
}

/**
 * Resolved once per operation (not once per `forTenant`), so a moved tenant's next call goes to the
 * new place. May be async (a cached registry lookup); a sync resolver keeps the shared path free of
 * awaits.
 */
export type PlacementResolver<P extends PlacementBase> = (tenant: Tenant) => P | Promise<P>;

/** One store's count of one tenant's (or one subject's) data. */
export interface StoreCount {
  /** The store that counted: 'postgres' | 's3' | 'qdrant' | 'secrets' | a third party's name. */
  readonly store: string;
  /** How many items (rows, objects, points, secrets) the tenant has there; 0 after a delete. */
  readonly total: number;
  /** The store's breakdown: rows per table, objects and bytes, points, secrets. */
  readonly parts: Readonly<Record<string, number>>;
}

/** The result of `TenantDataOps.delete`: the count before, and the recount after (always 0). */
export interface DeleteResult {
  readonly before: StoreCount;
  readonly after: StoreCount;
}

/** Export and erasure of one tenant's data in one store (data subject access requests, offboarding). */
export interface TenantDataOps<Item> {
  /** Same as `StoreCount.store`. */
  readonly store: string;
  count(): Promise<StoreCount>;
  /** Streams the tenant's items one at a time (bounded memory). */
  export(): AsyncIterable<Item>;
  /** Deletes everything of the tenant, then recounts; throws if the recount is not 0. */
  delete(): Promise<DeleteResult>;
}

/** What every `scoped<Raw>()` factory offers. */
export interface ScopedAdapter<Handle, Item> {
  /** The per-tenant handle. Refuses anything but a verified `Tenant` with `NOT_A_TENANT`. */
  forTenant(tenant: Tenant): Handle;
  /** The core ResourceProvider: `providers: { db: scoped.provider() }` gives tools `ctx.db`. */
  provider(): ResourceProvider<Handle>;
  /** Export and erasure of one tenant's data. Refuses anything but a verified `Tenant`. */
  tenantData(tenant: Tenant): TenantDataOps<Item>;
}

/** The contract's name for core's `ResourceProvider`. */
export type ContextProvider<Handle> = ResourceProvider<Handle>;
