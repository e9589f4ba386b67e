/**
 * Where a tenant's points live: the shared collection (tenant filter), or a collection of the
 * tenant's own (the dedicated tier). Tool code is the same for both. Whatever the placement, the
 * tenant filter and the forced tenant payload stay on every request: a collection routes, it does
 * not authorise (points that strayed into a tenant's collection stay invisible to it).
 */
export type QdrantPlacement =
  /** Shared collection, tenant filter only (implemented). */
  | { kind: 'shared'; collection: string }
  /** Dedicated shard key in a custom-sharded collection (not built yet: refused with QDRANT_PLACEMENT_UNSUPPORTED). */
  | { kind: 'shard-key'; collection: string; shardKey: string }
  /** A collection of the tenant's own (the dedicated tier); never the shared collection. */
  | { kind: 'collection'; collection: string };

/** Maps a verified tenant id to its placement. Called on every `forTenant`; keep it cheap and pure. */
export type QdrantPlacementResolver = (tenantId: string) => QdrantPlacement;

/** Every tenant in `collection`. */
export function sharedPlacement(collection: string): QdrantPlacementResolver {
  return () => ({ kind: 'shared', collection });
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
    return own === undefined ? { kind: 'shared', collection: shared } : { kind: 'collection', collection: own };
  };
}
