import type { TierTarget } from '@tenantscope/postgres';
import { type Command, Option } from 'commander';
import type { Io } from '../cli.ts';
import { load } from '../dsar/commands.ts';
import { EXIT } from '../exit.ts';
import type { MoveOutcome, StoreMover } from './run.ts';

/** The command's implementation, imported when it runs (never for `--help`). */
async function impl() {
  const [postgres, dsarConfig, stores, errors, pgMover, qdrantMover, run, s3Mover] = await Promise.all([
    import('@tenantscope/postgres'),
    import('../dsar/config.ts'),
    import('../dsar/stores.ts'),
    import('../errors.ts'),
    import('./postgres.ts'),
    import('./qdrant.ts'),
    import('./run.ts'),
    import('./s3.ts'),
  ]);
  return { ...postgres, ...dsarConfig, ...stores, ...errors, ...pgMover, ...qdrantMover, ...run, ...s3Mover };
}

interface MoveFlags {
  config?: string;
  store: 'postgres' | 's3' | 'qdrant';
  to: 'shared' | 'dedicated';
  target?: string;
  settleMs: string;
  registrySchema: string;
  rollback?: boolean;
  json?: boolean;
}

function summary(o: MoveOutcome): string {
  const where = (t?: TierTarget) => (t ? (t.target ? `${t.tier} (${t.target})` : t.tier) : '?');
  switch (o.status) {
    case 'already-there':
      return `${o.tenant} is already on ${where(o.to)} in ${o.store}; nothing to do\n`;
    case 'nothing-to-roll-back':
      return `no unfinished move of ${o.tenant} in ${o.store}; nothing to roll back\n`;
    case 'rolled-back':
      return `rolled back: ${o.tenant} stays on ${where(o.from)} in ${o.store}; the copy on ${where(o.to)} is deleted\n`;
    default: {
      const r = o.record;
      const parts = r
        ? Object.entries(r.verified.parts)
            .map(([p, m]) => `  ${p}: ${m.n} (checksum ${m.sum})`)
            .join('\n')
        : '';
      return `moved ${o.tenant} in ${o.store}: ${where(o.from)} -> ${where(o.to)}\n${parts}\nold place recounted: ${r?.old_after ?? 0}\nmove record${o.recordWritten ? ' written to the audit log' : ' already in the audit log'} (job ${r?.job_id})\n`;
    }
  }
}

/** Adds `tenant move` under the existing `tenant` command. */
export function addMoveCommand(root: Command, io: Io, setExit: (code: number) => void): void {
  const tenant = root.commands.find((c) => c.name() === 'tenant') ?? root.command('tenant');
  tenant
    .command('move')
    .description(
      "move a tenant's data in one store between the shared tier and a dedicated one, without losing a write",
    )
    .argument('<tenant>', 'tenant id')
    .addOption(new Option('--store <store>', 'the store').choices(['postgres', 's3', 'qdrant']).makeOptionMandatory())
    .addOption(new Option('--to <tier>', 'the tier to move to').choices(['shared', 'dedicated']).makeOptionMandatory())
    .option(
      '--target <name>',
      'with --to dedicated: the database (postgres), bucket (s3) or collection (qdrant: a custom-sharded one gives the tenant its own shard key there) of the tenant',
    )
    .option(
      '--settle-ms <ms>',
      "after pausing, wait this long (≥ the app's registry cacheMs + its longest write; for S3 that is scopedS3's writeTimeoutMs)",
      '3000',
    )
    .option('--registry-schema <schema>', 'schema of the placement registry table', 'tenantscope_placement')
    .option('--rollback', 'abandon an unfinished move: the tenant stays where it was, the new copy is deleted')
    .option('-c, --config <file>', 'config file with a dsar section (the stores)')
    .option('--json', 'print the outcome as JSON')
    .action(async (id: string, flags: MoveFlags) => {
      const { cliError, knownTenant, moveTenant, openStores, placementRegistry, PostgresMover, QdrantMover, S3Mover } =
        await impl();
      const settleMs = Number(flags.settleMs);
      if (!Number.isInteger(settleMs) || settleMs < 0 || settleMs > 600_000) {
        throw cliError('CLI_USAGE', '--settle-ms takes a whole number of milliseconds (0 to 600000)');
      }
      if ((flags.to === 'dedicated') !== (flags.target !== undefined)) {
        throw cliError('CLI_USAGE', '--target is required with --to dedicated, and only then');
      }
      const to: TierTarget = { tier: flags.to, target: flags.target ?? null };
      const { cfg, base } = await load(flags);
      await knownTenant(cfg, id, base);
      const s = await openStores(cfg);
      let mover: StoreMover | undefined;
      const registry = placementRegistry({ pool: s.admin, schema: flags.registrySchema });
      try {
        await registry.migrate().catch((cause) => {
          throw cliError('CLI_STORE_FAILED', 'the placement registry table cannot be created or reached', { cause });
        });
        if (flags.store === 'qdrant') {
          if (!s.qdrant || !cfg.qdrant)
            throw cliError('CLI_CONFIG_INVALID', 'dsar.qdrant: missing (the shared collection)');
          mover = new QdrantMover(s.qdrant.unscopedClient, cfg.qdrant.collection, cfg.qdrant.tenantField, id);
        } else if (flags.store === 's3') {
          if (!s.s3 || !cfg.s3) throw cliError('CLI_CONFIG_INVALID', 'dsar.s3: missing (the shared bucket)');
          mover = new S3Mover(s.s3.unscopedClient, cfg.s3.bucket, cfg.s3.prefix.replace('{tenant}', id), id);
        } else {
          mover = new PostgresMover(s, id);
        }
        const out = await moveTenant(s, registry, mover, id, { to, settleMs, rollback: Boolean(flags.rollback) });
        io.stdout(flags.json ? `${JSON.stringify(out, null, 2)}\n` : summary(out));
        setExit(EXIT.OK);
      } finally {
        await mover?.close();
        await registry.close();
        await s.close();
      }
    });
}
