import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { addAuditCommands } from './audit/commands.ts';
import { formatJson, formatJUnit, formatTable } from './check/output.ts';
import { type CheckReport, runCheck, VERSION } from './check/run.ts';
import { writeKeyPair } from './check/tokens.ts';
import { type CheckConfig, parseConfig, readConfigValue, type TenantscopeConfig } from './config.ts';
import { addDoctorCommand } from './doctor/run.ts';
import { addDsarCommands } from './dsar/commands.ts';
import { cliError, EXIT, exitCodeOf } from './errors.ts';
import { runEvidence } from './evidence/run.ts';
import { addKeysCommands } from './keys/commands.ts';
import { addMoveCommand } from './move/commands.ts';

/** Where the CLI writes; tests pass their own. */
export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** True when stderr is a terminal: progress lines are drawn there. */
  isTTY: boolean;
}

const defaultIo: Io = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stderr.isTTY),
};

const collect = (v: string, prev: string[] = []) => [...prev, v];

function pairs(list: string[] | undefined, flag: string): [string, string][] {
  return (list ?? []).map((p) => {
    const i = p.indexOf('=');
    if (i <= 0) throw cliError('CLI_USAGE', `${flag} takes TENANT=VALUE (got ${JSON.stringify(p.slice(0, 40))})`);
    return [p.slice(0, i), p.slice(i + 1)];
  });
}

interface CheckFlags {
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

function addCheckOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file (tenantscope.config.json or .ts)')
    .option('--token <tenant=token>', 'a bearer token for a tenant (repeatable)', collect)
    .option('--token-command <tenant=command>', 'a shell command printing a tenant token (repeatable)', collect)
    .option('--expect <tenant=tools>', 'comma-separated tools a tenant must see (repeatable)', collect)
    .option('--signing-key <file>', 'private key (PEM or JWK) the target trusts; enables every token check')
    .option('--issuer <iss>', 'issuer of minted tokens')
    .option('--audience <aud>', 'audience of minted tokens (default: the URL)')
    .option('--audit-dir <dir>', 'read the audit log from this JSONL directory')
    .option('--audit-postgres <url>', 'read the audit log from this Postgres database')
    .option('--timeout <ms>', 'per-request timeout');
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

/** Builds the program. `setExit` receives the exit code of the command that ran. */
export function program(
  io: Io = defaultIo,
  setExit: (code: number) => void = (c) => {
    process.exitCode = c;
  },
): Command {
  const root = new Command('tenantscope')
    .description('tenantscope: isolation checks against an MCP server, and compliance evidence')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  addCheckOptions(
    root
      .command('check')
      .description('run the isolation checks against a running MCP server (Streamable HTTP)')
      .argument('[mcp-url]', 'the MCP endpoint, e.g. http://127.0.0.1:3000/mcp'),
  )
    .option('--json', 'print the JSON report on stdout instead of the table')
    .option('--json-out <file>', 'also write the JSON report here')
    .option('--junit <file>', 'also write JUnit XML here')
    .option('--only <ids>', 'only checks whose id starts with one of these (comma-separated)')
    .option('--fail-fast', 'stop at the first failed check')
    .addOption(new Option('--strict', 'one bad answer fails: warnings fail too, and the run stops at the first'))
    .action(async (url: string | undefined, flags: CheckFlags & Record<string, unknown>) => {
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
    });

  addCheckOptions(
    root
      .command('evidence')
      .description('gather compliance evidence from live checks: Markdown, self-contained HTML and JSON')
      .argument('[mcp-url]', 'the MCP endpoint'),
  )
    .requiredOption('-o, --out <dir>', 'directory for evidence.md, evidence.html, evidence.json and raw/')
    .option('--json', 'print the JSON report on stdout')
    .action(async (url: string | undefined, flags: CheckFlags & { out: string; json?: boolean }) => {
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
    });
  root
    .command('keygen')
    .description('write a signing key pair for trying check against a server you run: private.jwk.json and jwks.json')
    .argument('<dir>', 'where to write the two files')
    .addOption(new Option('--alg <alg>', 'algorithm').choices(['ES256', 'RS256', 'EdDSA']).default('ES256'))
    .option('--kid <kid>', 'key id', 'tenantscope-check')
    .action(async (dir: string, flags: { alg: 'ES256' | 'RS256' | 'EdDSA'; kid: string }) => {
      const files = await writeKeyPair(dir, flags.alg, flags.kid);
      io.stdout(
        `private key (for check.auth.signingKey): ${files.privateKey}\npublic JWKS (for the server): ${files.jwks}\n`,
      );
      setExit(EXIT.OK);
    });
  addDsarCommands(root, io, setExit);
  addKeysCommands(root, io, setExit);
  addMoveCommand(root, io, setExit);
  addDoctorCommand(root, io, setExit);
  addAuditCommands(root, io, setExit);
  return root;
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let code: number = EXIT.OK;
  try {
    await program(io, (c) => {
      code = c;
    }).parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const e = err as { code?: string; message?: string };
    io.stderr(`tenantscope: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return exitCodeOf(err);
  }
}
