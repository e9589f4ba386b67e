/**
 * The escape corpus (escape.test.ts) again on the shard-key tier: acme's points live under its own
 * shard key in a custom-sharded collection, every request of acme's carries `shard_key` = acme
 * (the wire invariant checks it), and the same hostile requests must still leak nothing. globex's
 * points seeded under acme's shard key play strays (a half-finished move, a misrouted write): the
 * tenant filter, which stays on beside the shard key, must hide and protect them exactly as in
 * the shared collection.
 */
import { useShardKeyTier } from './testing/harness.ts';

useShardKeyTier();
await import('./escape.test.ts');
