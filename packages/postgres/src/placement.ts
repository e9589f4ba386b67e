import type { Tenant } from '@tenantscope/core';
import { pgError } from './errors.ts';

/**
 * Where one tenant's rows live. Only `shared` (one set of tables, rows separated by RLS) exists
 * now; `schema` and `database` are the seam for dedicated placement in a later release.
 */
export type Placement =
  | { kind: 'shared' }
  | { kind: 'schema'; schema: string }
  | { kind: 'database'; connectionString: string };

/** Maps a verified tenant to its placement. Called once per `forTenant`. */
export type PlacementResolver = (tenant: Tenant) => Placement;

/** Every tenant in the shared, RLS-separated tables. */
export const sharedPlacement: PlacementResolver = () => ({ kind: 'shared' });

/** @internal Resolves and checks the placement; refuses anything this release cannot serve. */
export function resolvePlacement(resolver: PlacementResolver, tenant: Tenant): Placement {
  let p: Placement;
  try {
    p = resolver(tenant);
  } catch (err) {
    throw pgError('PG_PLACEMENT_UNSUPPORTED', 'placement resolver failed', { cause: err });
  }
  if (p?.kind !== 'shared') {
    throw pgError('PG_PLACEMENT_UNSUPPORTED', `placement '${String(p?.kind)}' is not supported yet; only 'shared'`);
  }
  return p;
}
