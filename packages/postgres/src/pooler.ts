import { TenantScopeError } from '@tenantscope/core';
import pg from 'pg';
import { pgError } from './errors.ts';

/**
 * What sits between this pool and PostgreSQL.
 * - `'none'` (default): a direct connection. Fastest: hot lanes bind a connection once, and the
 *   bind call is a named prepared statement parsed once per connection.
 * - `'session'`: a pooler in session mode (PgBouncer `pool_mode = session`, Supavisor session
 *   mode, RDS Proxy): a client connection keeps one server connection, so it behaves as `'none'`.
 * - `'transaction'`: a pooler in transaction mode (PgBouncer `pool_mode = transaction`, Supavisor
 *   port 6543, pgcat): every transaction may run on another server connection that other clients
 *   share. Nothing tenant-bound outlives its transaction: hot lanes bind per statement, the bind
 *   call is parsed unnamed each time, and text that may leave session state is cleaned up inside
 *   its own transaction (and must be a single statement).
 */
export type PoolerMode = 'none' | 'session' | 'transaction';

export interface PoolerOptions {
  /** See `PoolerMode`. Default `'none'`. */
  mode: PoolerMode;
  /**
   * The pooler keeps named prepared statements across transactions (PgBouncer 1.21+ with
   * `max_prepared_statements > 0`, pgcat with `prepared_statements = true`). Only read with
   * `mode: 'transaction'`; then the bind call stays a named prepared statement. Default false.
   */
  preparedStatements: boolean;
}

/** @internal Checks and normalises `pooler` / `poolerPreparedStatements`. */
export function normalisePooler(mode: unknown, preparedStatements: unknown): PoolerOptions {
  const m = mode ?? 'none';
  if (m !== 'none' && m !== 'session' && m !== 'transaction') {
    throw new TenantScopeError('INVALID_CONFIG', "pooler must be 'none', 'session' or 'transaction'");
  }
  if (preparedStatements !== undefined && typeof preparedStatements !== 'boolean') {
    throw new TenantScopeError('INVALID_CONFIG', 'poolerPreparedStatements must be a boolean');
  }
  return { mode: m, preparedStatements: m === 'transaction' ? preparedStatements === true : true };
}

/** @internal Whether the bind call may stay a named prepared statement across transactions. */
export function namedStatementsSurvive(p: PoolerOptions): boolean {
  return p.mode !== 'transaction' || p.preparedStatements;
}

/**
 * Run inside a transaction that executed text which may leave session state, just before COMMIT,
 * when a transaction pooler shares the server connection: what `DISCARD ALL` does (it cannot run
 * in a transaction block), minus what needs a superuser. Settings (`SET`, `set_config(…, false)`,
 * `SET ROLE`), cursors WITH HOLD, LISTEN, session advisory locks, temporary tables and cached plans
 * end with the transaction instead of reaching the next client of that server connection.
 * @internal
 */
export function sessionCleanup(p: PoolerOptions): string[] {
  return [
    'RESET ALL',
    'RESET ROLE',
    'CLOSE ALL',
    'UNLISTEN *',
    'SELECT pg_catalog.pg_advisory_unlock_all()',
    'DISCARD TEMP',
    // A pooler that tracks prepared statements (PgBouncer 1.21+) would lose track of its own.
    ...(p.preparedStatements ? [] : ['DEALLOCATE ALL']),
  ];
}

/** What `detectTransactionPooler` saw. */
export interface PoolerProbe {
  /** Proof of a transaction (or statement) pooler: two client connections shared a backend, or one moved. */
  transactionPooler: boolean;
  /** Human-readable evidence, no secrets. */
  evidence: string;
  /** The server's own port (`inet_server_port()`) vs the port the client dialled, when both are known. */
  serverPort: number | null;
  clientPort: number | null;
}

/**
 * Looks for a transaction pooler between the client and PostgreSQL. Client connection A reads its
 * backend pid; client connection B opens a transaction and reads its backend pid (a pooler that
 * reuses the most recently released server, as PgBouncer does by default, hands it A's); then A
 * reads its pid again. On a direct connection or a session pooler, A always has its own backend,
 * so "B got A's backend" or "A's backend changed" is proof; the absence of proof is not proof of
 * the opposite (a busy pooler may hand out other server connections). Opens two connections.
 * @internal
 */
export async function detectTransactionPooler(config: pg.ClientConfig, timeoutMs = 10_000): Promise<PoolerProbe> {
  const { pipeline: _p, ...plain } = config as pg.ClientConfig & { pipeline?: boolean };
  const a = new pg.Client({ ...plain, connectionTimeoutMillis: timeoutMs } as pg.ClientConfig);
  const b = new pg.Client({ ...plain, connectionTimeoutMillis: timeoutMs } as pg.ClientConfig);
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  const pid = async (c: pg.Client) =>
    (await c.query<{ p: number; port: number | null }>('SELECT pg_backend_pid() AS p, inet_server_port() AS port'))
      .rows[0] as { p: number; port: number | null };
  try {
    await Promise.all([a.connect(), b.connect()]);
    const a1 = await pid(a);
    await b.query('BEGIN');
    const b1 = await pid(b);
    const a2 = await pid(a);
    await b.query('ROLLBACK');
    const a3 = await pid(a);
    const shared = b1.p === a1.p;
    const moved = a2.p !== a1.p || a3.p !== a1.p;
    const clientPort = portOf(config);
    return {
      transactionPooler: shared || moved,
      evidence: shared
        ? 'two client connections ran on one server backend'
        : moved
          ? 'one client connection ran on several server backends'
          : 'each client connection kept its own backend',
      serverPort: a1.port,
      clientPort,
    };
  } catch (err) {
    throw pgError('PG_UNAVAILABLE', 'pooler probe: database connection failed', { cause: err });
  } finally {
    await Promise.allSettled([a.end(), b.end()]);
  }
}

function portOf(config: pg.ClientConfig): number | null {
  if (typeof config.port === 'number') return config.port;
  if (typeof config.connectionString === 'string') {
    try {
      const u = new URL(config.connectionString);
      return u.port ? Number(u.port) : 5432;
    } catch {
      return null;
    }
  }
  return null;
}
