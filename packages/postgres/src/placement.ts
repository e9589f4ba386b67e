import { type PlacementResolver, type Tenant, TenantScopeError } from '@tenantscope/core';
import { pgError } from './errors.ts';

/**
 * Where one tenant's rows live.
 * - `shared`: the pool's own database, one set of tables, rows separated by RLS.
 * - `dedicated`: a database of the tenant's own (`connectionString`, as the application role;
 *   see `provisionTenantDatabase`). RLS stays installed and on there as a second wall.
 */
export type PgPlacement =
  | { readonly tier: 'shared' }
  | {
      readonly tier: 'dedicated';
      /** URL of the tenant's database, as the application role (through the pooler, if any). */
      readonly connectionString: string;
    };

/** Maps a verified tenant to its `PgPlacement`; called once per operation. May return a Promise. */
export type PgPlacementResolver = PlacementResolver<PgPlacement>;

/** The one shared placement object (compared by identity on the fast path). */
export const SHARED: PgPlacement = Object.freeze({ tier: 'shared' });

/** Every tenant in the shared, RLS-separated tables (the default). */
export const sharedPlacement: PgPlacementResolver = () => SHARED;

const MAX_URL = 2048;

/**
 * @internal Checks what a resolver returned. Anything but a `PgPlacement` is PG_PLACEMENT_INVALID;
 * the message never carries the value (a connection string holds a password).
 */
export function checkPlacement(p: unknown): PgPlacement {
  if (p === SHARED) return SHARED;
  if (typeof p !== 'object' || p === null) throw invalid('not an object');
  // The pre-tier form ({ kind: 'shared' | 'database' }) is still read.
  const kind = (p as { kind?: unknown }).kind;
  const tier =
    (p as { tier?: unknown }).tier ?? (kind === 'shared' ? 'shared' : kind === 'database' ? 'dedicated' : kind);
  if (tier === 'shared') return SHARED;
  if (tier === 'dedicated') {
    const url = (p as { connectionString?: unknown }).connectionString;
    if (typeof url !== 'string' || url.length === 0 || url.length > MAX_URL) {
      throw invalid('dedicated placement needs a connectionString');
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid('dedicated connectionString is not a URL');
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
      throw invalid('dedicated connectionString must be a postgres:// URL');
    }
    if (parsed.pathname.length < 2) throw invalid('dedicated connectionString must name a database');
    return { tier: 'dedicated', connectionString: url };
  }
  if (tier === 'schema') {
    throw pgError('PG_PLACEMENT_UNSUPPORTED', "schema-per-tenant placement is not supported; use tier 'dedicated'");
  }
  throw invalid("tier must be 'shared' or 'dedicated'");
}

function invalid(why: string): TenantScopeError {
  return pgError('PG_PLACEMENT_INVALID', `placement resolver returned an invalid placement: ${why}`);
}

/** @internal A resolver's throw or rejection: typed errors pass through (e.g. a paused tenant), others become PG_PLACEMENT_FAILED. */
export function placementFailed(err: unknown): TenantScopeError {
  if (err instanceof TenantScopeError) return err;
  return pgError('PG_PLACEMENT_FAILED', 'placement resolver failed', { cause: err });
}

/**
 * @internal Calls the resolver: the checked placement, a Promise of it, or a typed throw. A sync
 * resolver answering shared returns `SHARED` with no allocation and no await.
 */
export function resolvePlacement(resolver: PgPlacementResolver, tenant: Tenant): PgPlacement | Promise<PgPlacement> {
  let p: PgPlacement | Promise<PgPlacement>;
  try {
    p = resolver(tenant);
  } catch (err) {
    throw placementFailed(err);
  }
  if (p === SHARED) return SHARED;
  if (typeof (p as { then?: unknown } | null)?.then === 'function') {
    return Promise.resolve(p).then(checkPlacement, (err) => {
      throw placementFailed(err);
    });
  }
  return checkPlacement(p);
}
