import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT, type Io, main, program } from '@tenantscope/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root, runCli } from './helpers.ts';

// The CLI registers its commands cheaply and imports each implementation when the command runs.
// These tests hold the help text to what it was before that change (the fixture was generated from
// the eagerly loading code), keep exit codes identical, and catch an eager import creeping back.

const quiet = (): Io & { out: string; err: string } => {
  const io = {
    out: '',
    err: '',
    isTTY: false,
    stdout: (s: string) => {
      io.out += s;
    },
    stderr: (s: string) => {
      io.err += s;
    },
  };
  return io;
};

type Command = ReturnType<typeof program>;

function commandPaths(cmd: Command, path: string[] = []): string[][] {
  return [path, ...cmd.commands.flatMap((c) => commandPaths(c, [...path, c.name()]))];
}

const fixture = join(import.meta.dirname, '__fixtures__', 'cli-help.json');

describe('tenantscope help', () => {
  it('prints, for the program and every command, the same help and exit code as the eagerly loading CLI', async () => {
    const paths = commandPaths(program(quiet(), () => {}));
    const out: Record<string, { code: number; stdout: string; stderr: string }> = {};
    for (const p of paths) {
      const io = quiet();
      const code = await main([...p, '--help'], io);
      out[p.join(' ')] = { code, stdout: io.out, stderr: io.err };
    }
    const before = JSON.parse(await readFile(fixture, 'utf8')) as typeof out;
    // Every command that existed keeps its text; a command added later is listed but has no "before".
    for (const [name, help] of Object.entries(before)) expect(out[name], `help of "${name}"`).toEqual(help);
    expect(Object.keys(out).length).toBeGreaterThanOrEqual(Object.keys(before).length);
  });

  it('the real bin prints the program help with exit 0, and --version', async () => {
    const before = JSON.parse(await readFile(fixture, 'utf8')) as Record<string, { stdout: string }>;
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(before['']?.stdout);
    const version = await runCli(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});

describe('errors inside lazily loaded actions keep their exit codes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ts-startup-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keygen (its action imported when it runs) writes the pair and exits 0', async () => {
    const io = quiet();
    expect(await main(['keygen', join(dir, 'keys')], io)).toBe(EXIT.OK);
    expect(io.out).toContain(join(dir, 'keys', 'private.jwk.json'));
    expect(JSON.parse(await readFile(join(dir, 'keys', 'jwks.json'), 'utf8')).keys).toHaveLength(1);
  });

  it('usage errors from commander: exit 2', async () => {
    expect((await runCli(['no-such-command'])).code).toBe(EXIT.USAGE);
    expect((await runCli(['tenant', 'move', 'acme', '--store', 'nope', '--to', 'shared'])).code).toBe(EXIT.USAGE);
  });

  it('a CLI error thrown by an action maps through exitCodeOf, in process and through the bin', async () => {
    const io = quiet();
    expect(await main(['tenant', 'export', 'acme', '--out', join(dir, 'x')], io)).toBe(EXIT.USAGE);
    expect(io.err).toBe('tenantscope: CLI_USAGE: --config <file> is required (its dsar section names the stores)\n');
    const missing = join(dir, 'missing.json');
    for (const args of [
      ['doctor', '--config', missing],
      ['keys', 'list', '--config', missing],
      ['audit', 'verify', '--config', missing],
      ['tenant', 'move', 'acme', '--store', 's3', '--to', 'shared', '--config', missing],
      ['check', '--config', missing],
    ]) {
      const err = quiet();
      expect(await main(args, err), args.join(' ')).toBe(EXIT.USAGE);
      expect(err.err, args.join(' ')).toMatch(/^tenantscope: CLI_CONFIG_INVALID: /);
    }
    // Through the bin: the action's module is imported in the child, the error still maps to exit 2.
    const r = await runCli(['keys', 'list', '--config', missing]);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toMatch(/^tenantscope: CLI_CONFIG_INVALID: /);
    // A value the action checks before loading anything else.
    const settle = quiet();
    expect(await main(['tenant', 'move', 'a', '--store', 's3', '--to', 'shared', '--settle-ms', 'x'], settle)).toBe(
      EXIT.USAGE,
    );
    expect(settle.err).toContain('CLI_USAGE: --settle-ms');
  });
});

describe('start-up loads only the command line parser', () => {
  it('--help imports no driver, SDK or schema library (commander is the only dependency loaded)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ts-startup-hook-'));
    try {
      const hook = join(dir, 'hook.mjs');
      const log = join(dir, 'loaded.txt');
      await writeFile(
        hook,
        `import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const seen = [];
registerHooks({ load(url, ctx, next) { seen.push(url); return next(url, ctx); } });
process.on('exit', () => writeFileSync(${JSON.stringify(log)}, seen.join('\\n')));
`,
      );
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', pathToFileURL(hook).href, 'packages/cli/src/bin.ts', '--help'],
          {
            cwd: root,
            stdio: 'ignore',
          },
        );
        child.on('error', reject);
        child.on('close', resolve);
      });
      expect(code).toBe(0);
      const urls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
      const deps = new Set(
        urls
          .filter((u) => u.includes('/node_modules/'))
          .map((u) => u.replace(/.*\/node_modules\/((@[^/]+\/)?[^/]+).*/, '$1')),
      );
      expect([...deps]).toEqual(['commander']);
      const own = urls.filter((u) => u.includes('/packages/') && !u.includes('/node_modules/'));
      // The registration modules, exit.ts and version.ts; no implementation (stores, config schemas, errors).
      expect(own.filter((u) => /\/(config|errors|stores|run)\.ts$/.test(u) && !u.endsWith('/doctor/run.ts'))).toEqual(
        [],
      );
      expect(own.length).toBeLessThanOrEqual(12);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
