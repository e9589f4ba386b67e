import { Command, CommanderError, Option } from 'commander';
import { addAuditCommands } from './audit/commands.ts';
import type { CheckFlags } from './check/actions.ts';
import { addDoctorCommand } from './doctor/run.ts';
import { addDsarCommands } from './dsar/commands.ts';
import { EXIT } from './exit.ts';
import { addKeysCommands } from './keys/commands.ts';
import { addMoveCommand } from './move/commands.ts';
import { VERSION } from './version.ts';

// Registration only: names, options and help. Each action imports its implementation when it runs
// (the AWS SDK, pg, the Qdrant and MCP clients, zod schemas), so `--help` and a command's start-up
// load only what that command needs.

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
    .action(async (url: string | undefined, flags: CheckFlags & Record<string, unknown>) =>
      (await import('./check/actions.ts')).checkAction(io, setExit, url, flags),
    );

  addCheckOptions(
    root
      .command('evidence')
      .description('gather compliance evidence from live checks: Markdown, self-contained HTML and JSON')
      .argument('[mcp-url]', 'the MCP endpoint'),
  )
    .requiredOption('-o, --out <dir>', 'directory for evidence.md, evidence.html, evidence.json and raw/')
    .option('--json', 'print the JSON report on stdout')
    .action(async (url: string | undefined, flags: CheckFlags & { out: string; json?: boolean }) =>
      (await import('./check/actions.ts')).evidenceAction(io, setExit, url, flags),
    );
  root
    .command('keygen')
    .description('write a signing key pair for trying check against a server you run: private.jwk.json and jwks.json')
    .argument('<dir>', 'where to write the two files')
    .addOption(new Option('--alg <alg>', 'algorithm').choices(['ES256', 'RS256', 'EdDSA']).default('ES256'))
    .option('--kid <kid>', 'key id', 'tenantscope-check')
    .action(async (dir: string, flags: { alg: 'ES256' | 'RS256' | 'EdDSA'; kid: string }) => {
      const files = await (await import('./check/tokens.ts')).writeKeyPair(dir, flags.alg, flags.kid);
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
    const { exitCodeOf } = await import('./errors.ts');
    const e = err as { code?: string; message?: string };
    io.stderr(`tenantscope: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return exitCodeOf(err);
  }
}
