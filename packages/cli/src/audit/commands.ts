import type { Command } from 'commander';
import type { Io } from '../cli.ts';
import { load } from '../dsar/commands.ts';
import { EXIT } from '../exit.ts';
import type { AuditBackend, openAudit } from './backend.ts';

/** The commands' implementation, imported when one of them runs (never for `--help`). */
async function impl() {
  const [dsarConfig, tar, errors, backend, exp] = await Promise.all([
    import('../dsar/config.ts'),
    import('../dsar/tar.ts'),
    import('../errors.ts'),
    import('./backend.ts'),
    import('./export.ts'),
  ]);
  return { ...dsarConfig, ...tar, ...errors, ...backend, ...exp };
}

async function withAudit<T>(cfg: Parameters<typeof openAudit>[0], fn: (a: AuditBackend) => Promise<T>): Promise<T> {
  const { openAudit } = await impl();
  const audit = openAudit(cfg);
  try {
    return await fn(audit);
  } finally {
    await audit.close();
  }
}

/** Adds `audit verify` and `audit export` (the audit log of the config's dsar section: JSONL or Postgres). */
export function addAuditCommands(root: Command, io: Io, setExit: (code: number) => void): void {
  const audit = root.command('audit').description('the audit log named in the dsar section (JSONL or Postgres)');
  audit
    .command('verify')
    .description('verify the hash chains (one tenant or every stream) against the anchors; exit 1 on a break')
    .option('--tenant <tenant>', 'only this tenant')
    .option('-c, --config <file>', 'config file with a dsar section')
    .option('--json', 'print the report as JSON')
    .action(async (flags: { config?: string; json?: boolean; tenant?: string }) => {
      const { knownTenant } = await impl();
      const { cfg, base } = await load(flags);
      if (flags.tenant !== undefined) await knownTenant(cfg, flags.tenant, base);
      const report = await withAudit(cfg, (a) => a.verify(flags.tenant));
      io.stdout(
        flags.json
          ? `${JSON.stringify(report, null, 2)}\n`
          : `${report.streams
              .map(
                (r) =>
                  `${r.ok ? 'ok    ' : 'BROKEN'} ${r.stream}: ${r.events} events${r.break ? ` (${JSON.stringify(r.break)})` : ''}`,
              )
              .join('\n')}\n${report.ok ? 'every chain verifies' : 'a chain is broken'}\n`,
      );
      setExit(report.ok ? EXIT.OK : EXIT.FAILED);
    });
  audit
    .command('export')
    .description(
      'copy the stored chains (one tenant or every stream) as JSONL day files with their verification and a signed manifest; exit 1 when a chain is broken',
    )
    .option('--tenant <tenant>', 'only this tenant')
    .requiredOption(
      '--out <dir|file.tar|file.jsonl>',
      'a new or empty directory, a new .tar file, or (with --tenant) a new .jsonl file',
    )
    .option('-c, --config <file>', 'config file with a dsar section (its signingKey signs the manifest)')
    .option('--json', 'print the outcome as JSON')
    .action(async (flags: { config?: string; json?: boolean; tenant?: string; out: string }) => {
      const { cliError, exportAudit, exportAuditFile, knownTenant, withTarOut } = await impl();
      const { cfg, base } = await load(flags);
      if (flags.tenant !== undefined) await knownTenant(cfg, flags.tenant, base);
      if (flags.out.endsWith('.jsonl')) {
        const tenant = flags.tenant;
        if (tenant === undefined) throw cliError('CLI_USAGE', '--out <file>.jsonl holds one stream: give --tenant');
        const events = await withAudit(cfg, (a) => exportAuditFile(a, tenant, flags.out));
        io.stdout(
          flags.json
            ? `${JSON.stringify({ out: flags.out, streams: [tenant], events })}\n`
            : `exported ${events} events of ${tenant} to ${flags.out}\n`,
        );
        setExit(EXIT.OK);
        return;
      }
      const r = await withTarOut(flags.out, (dir) =>
        withAudit(cfg, (a) => exportAudit(a, cfg.signingKey, flags.tenant, dir)),
      );
      io.stdout(
        flags.json
          ? `${JSON.stringify({ ...r, out: flags.out })}\n`
          : `exported ${r.events} events in ${r.streams.length} stream(s) to ${flags.out}\n${r.ok ? 'every chain verifies' : 'a chain is BROKEN (see verification.json)'}\n`,
      );
      setExit(r.ok ? EXIT.OK : EXIT.FAILED);
    });
}
