/**
 * The escape corpus (escape.test.ts) again on the dedicated tier: acme's points live in a
 * collection of its own, and the same hostile requests must still leak nothing. globex's points
 * seeded into acme's collection play strays (a half-finished move, a misrouted write): the tenant
 * filter, which stays on in a dedicated collection, must hide and protect them exactly as in the
 * shared collection.
 */
import { useDedicatedCollectionTier } from './testing/harness.ts';

useDedicatedCollectionTier();
await import('./escape.test.ts');
