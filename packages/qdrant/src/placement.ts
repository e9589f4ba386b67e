/**
 * Where a tenant's points live. Today every tenant shares one collection and is kept apart by
 * the tenant filter. The seam is here so a later version can route a tenant to a dedicated shard
 * key in the shared collection (Qdrant's tiered multitenancy) or to a collection of its own
 * without touching tool code. Whatever the placement, the tenant filter stays on every request:
 * a shard key routes, it does not authorise.
 */
export type QdrantPlacement =
  /** Shared collection, tenant filter only (implemented). */
  | { kind: 'shared'; collection: string }
  /** Dedicated shard key in a custom-sharded collection (planned; refused today). */
  | { kind: 'shard-key'; collection: string; shardKey: string }
  /** A collection of the tenant's own (planned; refused today). */
  | { kind: 'collection'; collection: string };

/** Maps a verified tenant id to its placement. Called on every `forTenant`; keep it cheap and pure. */
export type QdrantPlacementResolver = (tenantId: string) => QdrantPlacement;

/** Every tenant in `collection`. */
export function sharedPlacement(collection: string): QdrantPlacementResolver {
  return () => ({ kind: 'shared', collection });
}
