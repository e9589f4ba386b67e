import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { inject } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/**
 * The example server as a user runs it (`node examples/crm-server/src/main.ts`), on the suite's
 * PostgreSQL, loopback only, with only the plugins these suites use; `env` adds to or overrides that.
 */
export function spawnExample(port: number, env: Record<string, string>): { child: ChildProcess; output(): string } {
  const child = spawn(process.execPath, ['examples/crm-server/src/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: inject('databaseUrl'),
      TENANTSCOPE_PLUGINS: 'core-tools,postgres',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const add = (d: Buffer) => {
    out += d;
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return { child, output: () => out };
}
