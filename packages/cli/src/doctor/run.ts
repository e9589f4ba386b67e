import type { Command } from 'commander';
import type { Io } from '../cli.ts';
import { load } from '../dsar/commands.ts';
import type { DsarConfig } from '../dsar/config.ts';
import { EXIT } from '../exit.ts';
import type { DoctorConfig } from './config.ts';
import type { Finding, StoreName } from './stores.ts';

export interface DoctorReport {
  /** False when any finding is an error. */
  ok: boolean;
  checked_at: string;
  /** The stores checked (those configured in `dsar`). */
  stores: StoreName[];
  errors: number;
  warnings: number;
  findings: Finding[];
}

/** Runs every configured store's check (concurrently) into one report. */
export async function runDoctorReport(cfg: DsarConfig, tenants: string[], doc: DoctorConfig): Promise<DoctorReport> {
  const { postgresFindings, qdrantFindings, s3Findings, secretsFindings } = await import('./stores.ts');
  const checks: [StoreName, Promise<Finding[]>][] = [['postgres', postgresFindings(cfg, doc)]];
  if (cfg.s3) checks.push(['s3', s3Findings(cfg, tenants, doc)]);
  if (cfg.qdrant) checks.push(['qdrant', qdrantFindings(cfg, tenants)]);
  if (cfg.secrets) checks.push(['secrets', secretsFindings(cfg, tenants, doc)]);
  const settled = await Promise.allSettled(checks.map(([, p]) => p));
  const findings: Finding[] = [];
  for (const r of settled) {
    // A config error (a missing env var) stops the run with exit 2, after every check has settled.
    if (r.status === 'rejected') throw r.reason;
    findings.push(...r.value);
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  return {
    ok: errors === 0,
    checked_at: new Date().toISOString(),
    stores: checks.map(([s]) => s),
    errors,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    findings,
  };
}

const order = { error: 0, warning: 1, info: 2 } as const;

export function formatDoctor(r: DoctorReport): string {
  const rows = [...r.findings].sort((a, b) => order[a.severity] - order[b.severity] || a.store.localeCompare(b.store));
  const lines = rows.map(
    (f) =>
      `${f.severity.toUpperCase().padEnd(7)} ${f.store.padEnd(8)} ${f.code}${f.object || f.database ? ` [${[f.database, f.object].filter(Boolean).join(': ')}]` : ''}: ${f.message}`,
  );
  lines.push(`${r.ok ? 'ok' : 'FAILED'}: ${r.errors} error(s), ${r.warnings} warning(s) over ${r.stores.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** Adds `tenantscope doctor`. */
export function addDoctorCommand(root: Command, io: Io, setExit: (code: number) => void): void {
  root
    .command('doctor')
    .description('check every configured store (Postgres, S3, Qdrant, secrets); exit 1 on any error')
    .option('-c, --config <file>', 'config file with a dsar section (the stores) and an optional doctor section')
    .option('--json', 'print the report as JSON')
    .action(async (flags: { config?: string; json?: boolean }) => {
      const [{ tenantIds }, { doctorSectionSchema }] = await Promise.all([
        import('../dsar/config.ts'),
        import('./config.ts'),
      ]);
      const { cfg, base, config } = await load(flags);
      const doc = config.doctor ?? doctorSectionSchema.parse({});
      const report = await runDoctorReport(cfg, await tenantIds(cfg, base), doc);
      io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
      setExit(report.ok ? EXIT.OK : EXIT.FAILED);
    });
}
