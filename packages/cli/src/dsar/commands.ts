import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Io } from '../cli.ts';
import type { TenantscopeConfig } from '../config.ts';
import { EXIT } from '../exit.ts';
import type { DsarConfig } from './config.ts';
import type { Stores } from './stores.ts';

/** The commands' implementation, imported when one of them runs (never for `--help`). */
async function impl() {
  const [config, errors, dsarConfig, del, exp, progress, stores, subject, tar] = await Promise.all([
    import('../config.ts'),
    import('../errors.ts'),
    import('./config.ts'),
    import('./delete.ts'),
    import('./export.ts'),
    import('./progress.ts'),
    import('./stores.ts'),
    import('./subject.ts'),
    import('./tar.ts'),
  ]);
  return { ...config, ...errors, ...dsarConfig, ...del, ...exp, ...progress, ...stores, ...subject, ...tar };
}

export interface Flags {
  config?: string;
  json?: boolean;
}

/** Reads the config's `dsar` section; relative paths in it resolve from the config file's folder. */
export async function load(flags: Flags): Promise<{ cfg: DsarConfig; base: string; config: TenantscopeConfig }> {
  const { cliError, dsarSection, parseConfig, readConfigValue } = await impl();
  if (!flags.config) throw cliError('CLI_USAGE', '--config <file> is required (its dsar section names the stores)');
  const config = parseConfig(await readConfigValue(flags.config), flags.config);
  const cfg = dsarSection(config, flags.config);
  const base = dirname(resolve(flags.config));
  return {
    base,
    config,
    cfg: {
      ...cfg,
      signingKey: resolve(base, cfg.signingKey),
      audit:
        'jsonlDir' in cfg.audit
          ? {
              jsonlDir: resolve(base, cfg.audit.jsonlDir),
              ...(cfg.audit.anchorsDir ? { anchorsDir: resolve(base, cfg.audit.anchorsDir) } : {}),
            }
          : cfg.audit,
    },
  };
}

export async function withStores<T>(cfg: DsarConfig, fn: (s: Stores) => Promise<T>): Promise<T> {
  const { openStores } = await impl();
  const s = await openStores(cfg);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const counts = (c: Record<string, Record<string, number>>) =>
  Object.entries(c)
    .flatMap(([store, tables]) => Object.entries(tables).map(([t, n]) => `  ${store}.${t}: ${n}`))
    .join('\n');

/** Adds `tenant export|delete` and `verify-export` to the program. */
export function addDsarCommands(root: Command, io: Io, setExit: (code: number) => void): void {
  const tenant = root.command('tenant').description("export or delete one tenant's data in every configured store");
  tenant
    .command('export')
    .description('stream every store of a tenant into a signed export directory')
    .argument('<tenant>', 'tenant id')
    .requiredOption('--out <dir|file.tar>', 'a new or empty directory, or a new .tar file')
    .option('-c, --config <file>', 'config file with a dsar section')
    .option('--json', 'print the manifest as JSON (no progress bars)')
    .action(async (id: string, flags: Flags & { out: string }) => {
      const { exportTenant, knownTenant, progressBars, withTarOut } = await impl();
      const { cfg, base } = await load(flags);
      await knownTenant(cfg, id, base);
      const progress = progressBars(io, flags.json);
      let r: Awaited<ReturnType<typeof exportTenant>>;
      try {
        r = await withTarOut(flags.out, (dir) => withStores(cfg, (s) => exportTenant(s, id, dir, progress)));
      } finally {
        progress.stop();
      }
      io.stdout(
        flags.json
          ? `${JSON.stringify(r.manifest, null, 2)}\n`
          : `exported ${id} to ${flags.out}\n${counts(r.manifest.counts)}\nmanifest signed (key sha256 ${r.manifest.signature.key_sha256})\n`,
      );
      setExit(EXIT.OK);
    });
  tenant
    .command('delete')
    .description('delete a tenant in every store (without --confirm: a dry run that prints the counts)')
    .argument('<tenant>', 'tenant id')
    .option('--confirm <tenant>', 'the tenant id again, to really delete')
    .option('-c, --config <file>', 'config file with a dsar section')
    .option('--json', 'print the outcome as JSON')
    .action(async (id: string, flags: Flags & { confirm?: string }) => {
      const { cliError, deleteTenant, knownTenant } = await impl();
      const { cfg, base } = await load(flags);
      await knownTenant(cfg, id, base);
      if (flags.confirm !== undefined && flags.confirm !== id) {
        throw cliError('CLI_USAGE', '--confirm does not match the tenant; nothing was deleted');
      }
      const out = await withStores(cfg, (s) => deleteTenant(s, id, flags.confirm === id));
      if (flags.json) io.stdout(`${JSON.stringify(out, null, 2)}\n`);
      else if (out.dryRun)
        io.stdout(`dry run: would delete for ${id}\n${counts(out.counts)}\n(rerun with --confirm ${id})\n`);
      else
        io.stdout(
          `deleted ${id}; every store counts 0\ndeletion certificate${out.certificateWritten ? ' (written to the audit log)' : ' (already in the audit log)'}:\n${JSON.stringify(out.certificate, null, 2)}\n`,
        );
      setExit(EXIT.OK);
    });
  const subject = root.command('subject').description('export or erase one data subject inside a tenant');
  subject
    .command('export')
    .description(
      "the subject's rows (tables with a subjectColumn), objects, points and secret names, into a signed export",
    )
    .argument('<tenant>', 'tenant id')
    .argument('<subject-id>', "the value of the tables' subjectColumn")
    .requiredOption('--out <dir|file.tar>', 'a new or empty directory, or a new .tar file')
    .option('-c, --config <file>', 'config file with a dsar section')
    .option('--json', 'print the manifest as JSON')
    .action(async (id: string, subjectId: string, flags: Flags & { out: string }) => {
      const { exportSubject, knownTenant, withTarOut } = await impl();
      const { cfg, base } = await load(flags);
      await knownTenant(cfg, id, base);
      const r = await withTarOut(flags.out, (dir) => withStores(cfg, (s) => exportSubject(s, id, subjectId, dir)));
      io.stdout(
        flags.json
          ? `${JSON.stringify(r.manifest, null, 2)}\n`
          : `exported to ${flags.out}\n${counts(r.manifest.counts)}\n`,
      );
      setExit(EXIT.OK);
    });
  subject
    .command('erase')
    .description(
      "delete or pseudonymise (per table, per config) the subject's rows, delete its objects, points and secrets; audited with a keyed hash of the id",
    )
    .argument('<tenant>', 'tenant id')
    .argument('<subject-id>', "the value of the tables' subjectColumn")
    .option('-c, --config <file>', 'config file with a dsar section')
    .option('--json', 'print the outcome as JSON')
    .action(async (id: string, subjectId: string, flags: Flags) => {
      const { eraseSubject, knownTenant } = await impl();
      const { cfg, base } = await load(flags);
      await knownTenant(cfg, id, base);
      const r = await withStores(cfg, (s) => eraseSubject(s, id, subjectId));
      io.stdout(
        flags.json
          ? `${JSON.stringify(r, null, 2)}\n`
          : `erased in ${id} (audited as ${r.subject_hash})\n${Object.entries(r.postgres)
              .map(([t, x]) => `  postgres.${t}: ${x.rows} ${x.action === 'delete' ? 'deleted' : 'pseudonymised'}`)
              .concat(Object.entries(r.stores).map(([store, x]) => `  ${store}: ${x.deleted} deleted`))
              .join('\n')}\n`,
      );
      setExit(EXIT.OK);
    });
  root
    .command('verify-export')
    .description("check an export's signature, every file's SHA-256, and that nothing was added")
    .argument('<export>', 'the export: a directory or a .tar file')
    .option('-c, --config <file>', 'config file: the public half of dsar.signingKey is used')
    .option('--public-key <file>', 'Ed25519 public key (PEM or JWK) instead of the config')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, flags: Flags & { publicKey?: string }) => {
      const { cliError, readVerifyKey, verifyExport } = await impl();
      const keyFile = flags.publicKey ?? (flags.config ? (await load(flags)).cfg.signingKey : undefined);
      if (!keyFile) throw cliError('CLI_USAGE', 'give --public-key <file> or --config <file>');
      const report = await verifyExport(dir, await readVerifyKey(keyFile));
      io.stdout(
        flags.json
          ? `${JSON.stringify(report, null, 2)}\n`
          : report.ok
            ? `export of ${report.tenant} verifies: signature and ${report.files} files\n`
            : `export does NOT verify:\n${report.problems.map((p) => `  ${p}`).join('\n')}\n`,
      );
      setExit(report.ok ? EXIT.OK : EXIT.FAILED);
    });
}
