import { TenantScopeError } from '@tenantscope/core';
import type { Pool, PoolClient } from 'pg';
import { ident, roleSql } from './schema.ts';

/**
 * What sits between the audit pools and PostgreSQL (as `@tenantscope/postgres`'s `pooler`).
 * - `'none'` (default): a direct connection. Each pool's sessions start as their role (startup
 *   option `-c role=… -c synchronous_commit=on`): one round trip per batch.
 * - `'session'` / `'transaction'`: a pooler (PgBouncer, Supavisor, RDS Proxy, pgcat). Poolers
 *   refuse or drop startup options, and in transaction mode a session setting would reach other
 *   clients of the server connection. So the pools log in as the given user and every transaction
 *   starts with `SET LOCAL ROLE <role>; SET LOCAL synchronous_commit = on`, which end with it.
 */
export type AuditPoolerMode = 'none' | 'session' | 'transaction';

/** @internal Checks a `pooler` option. */
export function auditPooler(mode: unknown): AuditPoolerMode {
  const m = mode ?? 'none';
  if (m !== 'none' && m !== 'session' && m !== 'transaction') {
    throw new TenantScopeError('INVALID_CONFIG', "pooler must be 'none', 'session' or 'transaction'");
  }
  return m;
}

/** @internal Checks a `role` option (quoted identifier), or undefined. */
export function checkedRole(role: unknown): string | undefined {
  if (role === undefined) return undefined;
  if (typeof role !== 'string') throw new TenantScopeError('INVALID_CONFIG', 'role must be a string');
  return ident(role, 'role');
}

/**
 * @internal Runs `fn` on the pool as is (no `role`), or inside one transaction on one connection
 * that runs as `role` with durable commits (`roleSql`).
 */
export async function asRole<T>(
  pool: Pool,
  quotedRole: string | undefined,
  fn: (q: Pool | PoolClient) => Promise<T>,
): Promise<T> {
  if (quotedRole === undefined) return fn(pool);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(`BEGIN; ${roleSql(quotedRole)}`);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => {
      broken = e;
    });
    throw err;
  } finally {
    // A connection whose ROLLBACK failed is not handed to anyone else.
    client.release(broken);
  }
}
