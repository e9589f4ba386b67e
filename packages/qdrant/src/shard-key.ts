/**
 * The shard-key tier's routing: the client a tenant on that tier talks through. Every call that
 * names the tenant's collection with an arguments object gets `shard_key` = the tenant's key
 * (every search of a batch too), so Qdrant writes only under that key and reads see only it.
 * TenantQdrant still adds the tenant filter and payload as on every tier: the shard key routes,
 * the filter authorises. Calls naming any other collection (a `lookup_from` collection) pass
 * through unchanged.
 * @internal
 */
import type { QdrantClient } from '@qdrant/js-client-rest';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function withShardKey(args: Record<string, unknown>, shardKey: string, batch: boolean): Record<string, unknown> {
  if (batch && Array.isArray(args.searches)) {
    return { ...args, searches: args.searches.map((s) => (isObject(s) ? { ...s, shard_key: shardKey } : s)) };
  }
  return { ...args, shard_key: shardKey };
}

/** `client`, with `shard_key` = `shardKey` on every call that names `collection`. */
export function routedToShardKey(client: QdrantClient, collection: string, shardKey: string): QdrantClient {
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'api') {
        // The generated OpenAPI client (used for update_vectors): requests name collection_name.
        return () => routedApi(value.call(target) as object, collection, shardKey);
      }
      return (...args: unknown[]) => {
        if (args[0] === collection && isObject(args[1])) {
          args = [args[0], withShardKey(args[1], shardKey, prop === 'queryBatch'), ...args.slice(2)];
        }
        return value.apply(target, args);
      };
    },
  });
}

function routedApi<T extends object>(api: T, collection: string, shardKey: string): T {
  return new Proxy(api, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const [req, ...rest] = args;
        if (isObject(req) && req.collection_name === collection) {
          return value.apply(target, [withShardKey(req, shardKey, prop === 'queryBatchPoints'), ...rest]);
        }
        return value.apply(target, args);
      };
    },
  });
}
