/**
 * Benchmark: start-up of the `tenantscope` bin, lazily loaded commands (this checkout) against the
 * eagerly loading CLI (BENCH_BASE_REF, default the commit before the change), as a user runs it.
 *
 *   bash scripts/with-toolchain.sh node test/bench/cli-startup/main.ts
 *
 * The baseline is a git worktree of BENCH_BASE_REF in .tmp/cli-startup-base/ sharing this
 * checkout's installed dependencies (the root node_modules linked, each package's node_modules
 * copied as its relative links, so workspace packages resolve inside the worktree). Both sides run
 * the same Node, one process at a time, with BENCH_WARMUP (2) warm-up runs each and BENCH_ROUNDS
 * (8) interleaved rounds. Per run: wall time (spawn to exit) and the child's own CPU time
 * (user + system, from process.cpuUsage() at exit via --import). Medians are printed with the ratio.
 * Cases: `--help`, `keygen <dir>` (a real command: loads jose, writes a key pair) and
 * `keys list --config <missing>` (loads the keys implementation, then fails as a usage error).
 * No service is needed. Not part of CI.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const root = join(import.meta.dirname, '..', '..', '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const BASE_REF = process.env.BENCH_BASE_REF ?? '856a75f276d9622133aa14a3f15a4b747b4300dc';
const base = join(root, '.tmp', 'cli-startup-base');

function prepareBase(): void {
  const want = execFileSync('git', ['rev-parse', `${BASE_REF}^{commit}`], { cwd: root, encoding: 'utf8' }).trim();
  if (existsSync(join(base, '.git'))) {
    const have = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: base, encoding: 'utf8' }).trim();
    if (have === want) return;
    execFileSync('git', ['worktree', 'remove', '--force', base], { cwd: root });
  }
  execFileSync('git', ['worktree', 'add', '--detach', base, want], { cwd: root, stdio: 'ignore' });
  symlinkSync(join(root, 'node_modules'), join(base, 'node_modules'));
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const nm = join(root, 'packages', pkg, 'node_modules');
    if (existsSync(nm) && existsSync(join(base, 'packages', pkg)))
      cpSync(nm, join(base, 'packages', pkg, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  }
}

const work = mkdtempSync(join(tmpdir(), 'cli-startup-bench-'));
const cpuHook = join(work, 'cpu.mjs');
const cpuFile = join(work, 'cpu.txt');
await import('node:fs/promises').then((fs) =>
  fs.writeFile(
    cpuHook,
    `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { const u = process.cpuUsage(); writeFileSync(${JSON.stringify(cpuFile)}, String((u.user + u.system) / 1000)); });\n`,
  ),
);

let n = 0;
const cases: [string, () => string[]][] = [
  ['--help', () => ['--help']],
  ['keygen <dir>', () => ['keygen', join(work, `keys-${n++}`)]],
  ['keys list (bad config)', () => ['keys', 'list', '--config', join(work, 'missing.json')]],
];

interface Run {
  wall: number;
  cpu: number;
  code: number | null;
}

function run(dir: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    rmSync(cpuFile, { force: true });
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--import', cpuHook, join(dir, 'packages/cli/src/bin.ts'), ...args], {
      cwd: dir,
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = performance.now() - t0;
      resolve({ wall, cpu: Number(readFileSync(cpuFile, 'utf8')), code });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

prepareBase();
console.log(`node ${process.version}; baseline ${BASE_REF.slice(0, 12)} (eager) vs this checkout (lazy)`);
console.log(`warm-up ${WARMUP} per side, ${ROUNDS} interleaved rounds; medians\n`);
console.log('case                      side   wall ms   cpu ms   exit');
try {
  for (const [name, args] of cases) {
    const sides = { eager: base, lazy: root } as const;
    for (let i = 0; i < WARMUP; i++) for (const dir of Object.values(sides)) await run(dir, args());
    const got: Record<'eager' | 'lazy', Run[]> = { eager: [], lazy: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? (['eager', 'lazy'] as const) : (['lazy', 'eager'] as const);
      for (const side of order) got[side].push(await run(sides[side], args()));
    }
    const m = (side: 'eager' | 'lazy', k: 'wall' | 'cpu') => median(got[side].map((x) => x[k]));
    for (const side of ['eager', 'lazy'] as const)
      console.log(
        `${name.padEnd(25)} ${side.padEnd(5)} ${m(side, 'wall').toFixed(0).padStart(8)} ${m(side, 'cpu').toFixed(0).padStart(8)}   ${[...new Set(got[side].map((x) => x.code))].join(',')}`,
      );
    console.log(
      `${''.padEnd(25)} ratio lazy/eager: wall ${(m('lazy', 'wall') / m('eager', 'wall')).toFixed(2)}x, cpu ${(m('lazy', 'cpu') / m('eager', 'cpu')).toFixed(2)}x\n`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
