/**
 * Where a tenant's points live: the shared collection (tenant filter), a collection of the
 * tenant's own, or the tenant's own shard key in a custom-sharded collection (both dedicated
 * tiers). Tool code is the same for all. Whatever the placement, the tenant filter and the forced
 * tenant payload stay on every request: a collection or a shard key routes, it does not
 * authorise (points that strayed into a tenant's collection or shard key stay invisible to it).
 */
import type { PlacementBase } from '@tenantscope/core';
import { TenantScopeError } from '@tenantscope/core';

export type QdrantPlacement = PlacementBase &
  (
    | /** Shared collection, tenant filter only. */
    { readonly tier: 'shared'; readonly kind: 'shared'; readonly collection: string }
    /** A collection of the tenant's own; never the shared collection. */
    | { readonly tier: 'dedicated'; readonly kind: 'collection'; readonly collection: string }
    /**
     * The tenant's own shard key (`shardKey` = the tenant id) in a collection created with
     * `sharding_method: 'custom'`: writes carry `shard_key`, reads select it.
     */
    | { readonly tier: 'dedicated'; readonly kind: 'shard-key'; readonly collection: string; readonly shardKey: string }
  );

/**
 * What a resolver returns: a {@link QdrantPlacement}, or the short forms `{ tier: 'shared',
 * collection }`, `{ tier: 'dedicated', collection }` (own collection) and `{ tier: 'dedicated',
 * collection, shardKey }` (own shard key), or the older `{ kind, collection }` forms.
 */
export type QdrantPlacementInput =
  | QdrantPlacement
  | { tier: 'shared'; collection: string }
  | { tier: 'dedicated'; collection: string; shardKey?: string }
  | { kind: 'shared' | 'collection'; collection: string }
  | { kind: 'shard-key'; collection: string; shardKey: string };

/**
 * Maps a verified tenant id to its placement. Called at the start of every operation (and again
 * before each write is sent): keep it cheap; an async one should answer from a cache.
 */
export type QdrantPlacementResolver = (tenantId: string) => QdrantPlacementInput | Promise<QdrantPlacementInput>;

/**
 * The same, in the shape of core's `PlacementResolver` (it takes the tenant, `{ id }`): what
 * `placementRegistry(...).resolver('qdrant', registryPlacement(...))` of `@tenantscope/postgres` gives.
 */
export type QdrantTenantPlacementResolver = (tenant: {
  readonly id: string;
}) => QdrantPlacementInput | Promise<QdrantPlacementInput>;

/** Collection names a placement may give: no path characters. */
const COLLECTION = /^[A-Za-z0-9_-]{1,255}$/;

/** Every tenant in `collection`. */
export function sharedPlacement(collection: string): QdrantPlacementResolver {
  return () => ({ tier: 'shared', kind: 'shared', collection });
}

/**
 * A collection of their own for the tenants `collectionOf` names one for (undefined: the tenant
 * stays in `shared`). Two tenants must never be given the same collection.
 */
export function dedicatedCollections(
  shared: string,
  collectionOf: (tenantId: string) => string | undefined,
): QdrantPlacementResolver {
  return (tenantId) => {
    const own = collectionOf(tenantId);
    return own === undefined
      ? { tier: 'shared', kind: 'shared', collection: shared }
      : { tier: 'dedicated', kind: 'collection', collection: own };
  };
}

/**
 * The shard-key tier: each tenant `isDedicated` accepts (default: every tenant) gets its own shard
 * key, named after the tenant id, in `collection`, which must have been created with
 * `sharding_method: 'custom'` (create each tenant's key with `createShardKey` before moving it
 * there). The others stay in `shared`.
 */
export function shardKeyTier(
  collection: string,
  options: { shared?: string; isDedicated?: (tenantId: string) => boolean } = {},
): QdrantPlacementResolver {
  if (options.isDedicated && options.shared === undefined) {
    throw new TenantScopeError('INVALID_CONFIG', 'shardKeyTier: isDedicated needs the shared collection');
  }
  return (tenantId) =>
    options.isDedicated && !options.isDedicated(tenantId)
      ? { tier: 'shared', kind: 'shared', collection: options.shared as string }
      : { tier: 'dedicated', kind: 'shard-key', collection, shardKey: tenantId };
}

/**
 * Maps a placement-registry row (`{ tier, target }`: no target when shared, else a collection
 * name) to a placement, for `registry.resolver('qdrant', registryPlacement(shared, ...))`. A
 * dedicated target listed in `shardKeyCollections` (collections created with `sharding_method:
 * 'custom'`) places the tenant under its own shard key there; any other target is a collection of
 * the tenant's own. `tenant move --store qdrant` makes the same distinction from the collection's
 * config, so list exactly your custom-sharded collections here.
 */
export function registryPlacement(
  shared: string,
  options: { shardKeyCollections?: readonly string[] } = {},
): (t: { readonly tier: 'shared' | 'dedicated'; readonly target: string | null }, tenantId: string) => QdrantPlacement {
  if (!COLLECTION.test(shared))
    throw new TenantScopeError('INVALID_CONFIG', 'registryPlacement: bad shared collection');
  const sharded = new Set(options.shardKeyCollections ?? []);
  return (t, tenantId) => {
    if (t.tier === 'shared') return { tier: 'shared', kind: 'shared', collection: shared };
    const collection = t.target as string;
    return sharded.has(collection)
      ? { tier: 'dedicated', kind: 'shard-key', collection, shardKey: tenantId }
      : { tier: 'dedicated', kind: 'collection', collection };
  };
}

/** Whether two checked placements route to the same place. */
export function samePlace(a: QdrantPlacement, b: QdrantPlacement): boolean {
  return (
    a === b ||
    (a.kind === b.kind &&
      a.collection === b.collection &&
      (a.kind !== 'shard-key' || a.shardKey === (b as { shardKey?: string }).shardKey))
  );
}

/**
 * Checks a resolver's answer for one tenant and returns it in full form, frozen. Fails closed:
 * INVALID_CONFIG for a bad collection name, a dedicated placement naming the shared collection,
 * or a shard key other than the tenant id; QDRANT_PLACEMENT_UNSUPPORTED (via `unsupported`) for a
 * form this version does not know.
 * @internal
 */
export function checkPlacement(
  input: unknown,
  tenantId: string,
  sharedCollection: string,
  unsupported: () => Error,
): QdrantPlacement {
  const p = (input ?? {}) as Record<string, unknown>;
  const kind =
    p.kind ??
    (p.tier === 'shared'
      ? 'shared'
      : p.tier === 'dedicated'
        ? p.shardKey === undefined
          ? 'collection'
          : 'shard-key'
        : undefined);
  const tier = kind === 'shared' ? 'shared' : 'dedicated';
  if (
    (kind !== 'shared' && kind !== 'collection' && kind !== 'shard-key') ||
    (p.tier !== undefined && p.tier !== tier)
  ) {
    throw unsupported();
  }
  const collection = p.collection;
  if (typeof collection !== 'string' || !COLLECTION.test(collection)) {
    throw new TenantScopeError('INVALID_CONFIG', 'placement.collection must be a collection name');
  }
  if (kind === 'shared') return Object.freeze({ tier: 'shared', kind, collection });
  if (collection === sharedCollection) {
    throw new TenantScopeError('INVALID_CONFIG', 'a dedicated collection must not be the shared collection');
  }
  if (kind === 'collection') return Object.freeze({ tier: 'dedicated', kind, collection });
  if (p.shardKey !== tenantId) {
    // A key shared by two tenants, or another tenant's key, would make the tier a fiction.
    throw new TenantScopeError('INVALID_CONFIG', "a shard-key placement's shardKey must be the tenant id");
  }
  return Object.freeze({ tier: 'dedicated', kind, collection, shardKey: tenantId });
}
