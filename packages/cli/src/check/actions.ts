import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Io } from '../cli.ts';
import { type CheckConfig, parseConfig, readConfigValue, type TenantscopeConfig } from '../config.ts';
import { cliError, EXIT } from '../errors.ts';
import { formatJson, formatJUnit, formatTable } from './output.ts';
import { type CheckReport, runCheck } from './run.ts';

// The actions of `check` and `evidence`. cli.ts registers the commands and imports this
// module only when one of them runs, so `--help` and the other commands do not load it.

function pairs(list: string[] | undefined, flag: string): [string, string][] {
  return (list ?? []).map((p) => {
    const i = p.indexOf('=');
    if (i <= 0) throw cliError('CLI_USAGE', `${flag} takes TENANT=VALUE (got ${JSON.stringify(p.slice(0, 40))})`);
    return [p.slice(0, i), p.slice(i + 1)];
  });
}

export interface CheckFlags {
  config?: string;
  token?: string[];
  tokenCommand?: string[];
  expect?: string[];
  signingKey?: string;
  issuer?: string;
  audience?: string;
  auditDir?: string;
  auditPostgres?: string;
  timeout?: string;
}

/** The config file (if any) with the command-line flags laid over its `check` section, validated. */
async function buildConfig(
  url: string | undefined,
  flags: CheckFlags,
): Promise<{ config: TenantscopeConfig; url: string }> {
  const raw = (flags.config ? await readConfigValue(flags.config) : {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) throw cliError('CLI_CONFIG_INVALID', `${flags.config}: not an object`);
  const check = { ...((raw.check as Record<string, unknown>) ?? {}) };
  const tenants: Record<string, Record<string, unknown>> = {
    ...((check.tenants as Record<string, Record<string, unknown>>) ?? {}),
  };
  const tenant = (t: string) => {
    tenants[t] = { ...(tenants[t] ?? {}) };
    return tenants[t] as Record<string, unknown>;
  };
  for (const [t, v] of pairs(flags.token, '--token'))
    Object.assign(tenant(t), { token: v, tokenEnv: undefined, tokenCommand: undefined });
  for (const [t, v] of pairs(flags.tokenCommand, '--token-command'))
    Object.assign(tenant(t), { tokenCommand: v, token: undefined, tokenEnv: undefined });
  for (const [t, v] of pairs(flags.expect, '--expect'))
    tenant(t).tools = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (Object.keys(tenants).length) check.tenants = tenants;
  if (flags.signingKey || flags.issuer || flags.audience) {
    check.auth = {
      ...((check.auth as object) ?? {}),
      ...(flags.signingKey ? { signingKey: flags.signingKey } : {}),
      ...(flags.issuer ? { issuer: flags.issuer } : {}),
      ...(flags.audience ? { audience: flags.audience } : {}),
    };
  }
  if (flags.auditDir) check.audit = { jsonlDir: flags.auditDir };
  if (flags.auditPostgres) check.audit = { postgresUrl: flags.auditPostgres };
  if (flags.timeout) check.timeoutMs = Number(flags.timeout);
  if (url) check.url = url;
  const config = parseConfig({ ...raw, check }, flags.config ?? 'command line');
  const target = config.check?.url;
  if (!target) throw cliError('CLI_USAGE', 'no target: give <mcp-url> or check.url in the config');
  // Only loopback and the hosts the user names are contacted; the URL itself is the user's choice.
  return { config, url: target };
}

function progress(io: Io): ((done: number, total: number, r: { id: string; status: string }) => void) | undefined {
  if (!io.isTTY) return undefined;
  return (done, total, r) => {
    io.stderr(`\r\u001b[2K[${done}/${total}] ${r.status.toUpperCase()} ${r.id}`);
    if (done === total) io.stderr('\r\u001b[2K');
  };
}

async function writeOut(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

function exitFor(report: CheckReport): number {
  return report.ok ? EXIT.OK : EXIT.FAILED;
}

/** `check [mcp-url]`. */
export async function checkAction(
  io: Io,
  setExit: (code: number) => void,
  url: string | undefined,
  flags: CheckFlags & Record<string, unknown>,
): Promise<void> {
  const { config, url: target } = await buildConfig(url, flags);
  const report = await runCheck(target, config.check as CheckConfig, {
    strict: Boolean(flags.strict),
    failFast: Boolean(flags.failFast),
    only:
      typeof flags.only === 'string'
        ? flags.only
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined,
    onProgress: progress(io),
  });
  if (typeof flags.jsonOut === 'string') await writeOut(flags.jsonOut, formatJson(report));
  if (typeof flags.junit === 'string') await writeOut(flags.junit, formatJUnit(report));
  io.stdout(flags.json ? formatJson(report) : formatTable(report, io.isTTY));
  setExit(exitFor(report));
}

/** `evidence [mcp-url] --out <dir>`. */
export async function evidenceAction(
  io: Io,
  setExit: (code: number) => void,
  url: string | undefined,
  flags: CheckFlags & { out: string; json?: boolean },
): Promise<void> {
  const { runEvidence } = await import('../evidence/run.ts');
  const { config, url: target } = await buildConfig(url, flags);
  const argv = ['tenantscope', 'evidence', target, ...(flags.config ? ['--config', flags.config] : [])];
  const report = await runEvidence(target, config, {
    out: flags.out,
    command: argv.join(' '),
    onProgress: progress(io),
  });
  io.stdout(
    flags.json
      ? `${JSON.stringify(report, null, 2)}\n`
      : `${report.headline.text}\nwritten: ${report.files.join(', ')}\n`,
  );
  setExit(report.headline.failed > 0 ? EXIT.FAILED : EXIT.OK);
}
