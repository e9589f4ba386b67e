/**
 * DSAR follows the tenant's placement: per store, the placement registry (the one `tenant move`
 * writes) says where the tenant's data is, and every DSAR command counts, exports and deletes
 * there. No registry table, or no row for the tenant: the shared tier. A move of the tenant in
 * progress in a store (copying, paused, cleanup): refused, nothing touched.
 */
import {
  databaseUrl,
  type PlacementStore,
  pg,
  placementRegistry,
  scopedPool,
  type TierTarget,
  tenantData,
} from '@tenantscope/postgres';
import { scopedQdrant } from '@tenantscope/qdrant';
import { scopedS3 } from '@tenantscope/s3';
import { cliError } from '../errors.ts';
import { postgresUrl } from './config.ts';
import { assertRlsApplies, bindingKeyOf, type Stores } from './stores.ts';

/** Where a DSAR command worked, per configured store: `{ tier, target }` (target null on the shared tier). */
export type Placements = Record<string, TierTarget>;

const SHARED: TierTarget = { tier: 'shared', target: null };
const label = (t: TierTarget) => (t.target ? `${t.tier} (${t.target})` : t.tier);

/** The tenant's place per configured store, from the registry; refuses while a move of it is unfinished. */
export async function resolvePlacements(s: Stores, tenantId: string): Promise<Placements> {
  const stores: PlacementStore[] = [
    'postgres',
    ...(s.s3 ? (['s3'] as const) : []),
    ...(s.qdrant ? (['qdrant'] as const) : []),
  ];
  const out: Placements = Object.fromEntries(stores.map((st) => [st, SHARED]));
  const schema = s.cfg.postgres.registrySchema;
  if (schema === false) return out;
  let exists: boolean;
  let rows: { store: string; tier: string; target: string | null; state: string }[];
  try {
    exists = Boolean(
      (await s.admin.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`"${schema}".placements`])).rows[0]?.t,
    );
    if (!exists) return out;
    const registry = placementRegistry({ pool: s.admin, schema });
    try {
      rows = [];
      for (const st of stores) {
        const e = await registry.get(tenantId, st);
        if (e) rows.push({ store: st, tier: e.tier, target: e.target, state: e.state });
      }
    } finally {
      await registry.close();
    }
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('CLI_')) throw err;
    throw cliError(
      'CLI_STORE_FAILED',
      `placement registry (dsar.postgres.registrySchema ${schema}): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  for (const r of rows) {
    if (r.state !== 'active') {
      throw cliError(
        'CLI_MOVE_IN_PROGRESS',
        `a move of tenant ${tenantId} in ${r.store} is unfinished (${r.state}): finish it (or --rollback) with tenant move, then rerun; nothing was touched`,
      );
    }
    out[r.store] = { tier: r.tier as TierTarget['tier'], target: r.target };
  }
  return out;
}

/**
 * `s` with its Postgres, S3 and Qdrant stores pointed at the tenant's current places (the job
 * table, the audit log and secrets stay where they are). Pools it opens end with `s.close()`.
 */
export async function placedStores(s: Stores, tenantId: string): Promise<Stores & { placements: Placements }> {
  const placements = await resolvePlacements(s, tenantId);
  const placed: Stores & { placements: Placements } = { ...s, placements };
  const pgAt = placements.postgres as TierTarget;
  if (pgAt.tier === 'dedicated') {
    const url = databaseUrl(postgresUrl(s.cfg), pgAt.target as string);
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    admin.on('error', () => undefined);
    s.onClose(() => admin.end());
    try {
      // The same checks as the shared database: this role is confined by RLS on every table there.
      await assertRlsApplies(admin, s.cfg);
      const bindingKey = await bindingKeyOf(s.cfg.postgres.bindingKeyEnv, 'dsar.postgres.bindingKeyEnv', admin);
      const scoped = scopedPool({ connectionString: url, max: 3 }, { bindingKey, pooler: s.cfg.postgres.pooler });
      s.onClose(() => scoped.end());
      placed.scoped = scoped;
      placed.postgres = tenantData(scoped, {
        tables: s.cfg.postgres.tables.map((t) => t.name),
        audit: s.audit,
        actor: s.cfg.actor,
      });
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('CLI_')) {
        const e = err as Error;
        e.message = `postgres, ${label(pgAt)}: ${e.message}`;
        throw err;
      }
      throw cliError('CLI_STORE_FAILED', `postgres, ${label(pgAt)}: ${(err as Error).message}`, { cause: err });
    }
  }
  const s3At = placements.s3;
  if (s.s3 && s.cfg.s3 && s3At?.tier === 'dedicated') {
    const prefix = s.cfg.s3.prefix;
    placed.s3 = scopedS3(s.s3.unscopedClient, {
      bucket: s3At.target as string,
      prefix: (t) => prefix.replace('{tenant}', t.id),
    });
  }
  const qAt = placements.qdrant;
  if (s.qdrant && s.cfg.qdrant && qAt?.tier === 'dedicated') {
    const collection = qAt.target as string;
    const client = s.qdrant.unscopedClient;
    let custom: boolean;
    try {
      const info = await client.getCollection(collection);
      custom = (info.config?.params as { sharding_method?: string } | undefined)?.sharding_method === 'custom';
    } catch (err) {
      throw cliError('CLI_STORE_FAILED', `qdrant, ${label(qAt)}: ${(err as Error).message}`, { cause: err });
    }
    placed.qdrant = scopedQdrant(client, {
      collection: s.cfg.qdrant.collection,
      tenantField: s.cfg.qdrant.tenantField,
      placement: (id) => (custom ? { tier: 'dedicated', collection, shardKey: id } : { tier: 'dedicated', collection }),
    });
  }
  return placed;
}

/**
 * Before a certificate or a manifest is written: the placements must be the ones the command
 * worked at (a move that started meanwhile makes the result unprovable: refused, rerun).
 */
export async function assertPlacementsUnchanged(s: Stores, tenantId: string, used: Placements): Promise<void> {
  let now: Placements;
  try {
    now = await resolvePlacements(s, tenantId);
  } catch (err) {
    if ((err as { code?: string }).code === 'CLI_MOVE_IN_PROGRESS') {
      throw cliError('CLI_MOVE_IN_PROGRESS', `${(err as Error).message.replace(/; nothing was touched$/, '')}; rerun`);
    }
    throw err;
  }
  if (JSON.stringify(now) !== JSON.stringify(used)) {
    throw cliError(
      'CLI_MOVE_IN_PROGRESS',
      `tenant ${tenantId} was moved while this command ran (${JSON.stringify(used)} -> ${JSON.stringify(now)}); rerun`,
    );
  }
}
