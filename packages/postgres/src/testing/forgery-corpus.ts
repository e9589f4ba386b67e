/**
 * The forgery corpus: SQL an agent controls tries to point the binding at another tenant
 * ('globex'). Run as acme, each case must show 0 globex rows. Used by forgery.test.ts (shared
 * tier) and placement.test.ts (dedicated tier, where a stray globex row sits in acme's database).
 */
import type pg from 'pg';
import type { TenantDb } from '../scoped.ts';

export const Q =
  "SELECT count(*) FILTER (WHERE tenant_id = 'globex')::int AS foreign_rows, count(*)::int AS all_rows FROM customers";

/** Runs text and returns the number of globex rows any result set showed (0 if it errored). */
export async function foreignRows(
  db: TenantDb,
  text: string,
  untrusted = false,
): Promise<{ foreign: number; error: string | null }> {
  try {
    const r = untrusted ? await db.queryUntrusted(text, undefined, { timeoutMs: 1000 }) : await db.query(text);
    // multi-statement text gives an array of results
    const results = (Array.isArray(r) ? r : [r]) as pg.QueryResult[];
    let foreign = 0;
    for (const res of results) {
      for (const row of res.rows ?? []) {
        if (typeof row.foreign_rows === 'number') foreign += row.foreign_rows;
        for (const v of Object.values(row)) if (typeof v === 'string' && v.startsWith('globex-')) foreign++;
      }
    }
    return { foreign, error: null };
  } catch (err) {
    return { foreign: 0, error: (err as { code?: string }).code ?? 'unknown' };
  }
}

export const corpus: [string, string][] = [
  ['set_config local to a plain id', `SELECT set_config('app.tenant_id', 'globex', true); ${Q}`],
  [
    'set_config in the same statement',
    `SELECT set_config('app.tenant_id', 'globex', true) AS s, * FROM customers WHERE tenant_id = 'globex'`,
  ],
  ['set_config session-level', `SELECT set_config('app.tenant_id', 'globex', false); ${Q}`],
  ['forged token shape', `SELECT set_config('app.tenant_id', 'x:globex:' || repeat('ab', 32), true); ${Q}`],
  [
    'own token with the tenant swapped',
    `SELECT set_config('app.tenant_id', replace(current_setting('app.tenant_id'), ':acme:', ':globex:'), true); ${Q}`,
  ],
  ['session token shape', `SELECT set_config('app.tenant_id', 's:globex:' || repeat('0', 64), true); ${Q}`],
  ['SET', `SET app.tenant_id = 'globex'; ${Q}`],
  ['SET LOCAL', `SET LOCAL app.tenant_id = 'globex'; ${Q}`],
  ['RESET ALL', `RESET ALL; ${Q}`],
  ['RESET the setting', `RESET app.tenant_id; ${Q}`],
  ['DISCARD ALL after ending the transaction', `COMMIT; DISCARD ALL; SET app.tenant_id = 'globex'; ${Q}`],
  ['SET ROLE to the owner', `SET ROLE ${'OWNER_ROLE'}; ${Q}`],
  ['SET ROLE postgres', `SET ROLE postgres; ${Q}`],
  ['SET SESSION AUTHORIZATION', `SET SESSION AUTHORIZATION postgres; ${Q}`],
  ['RESET ROLE', `RESET ROLE; ${Q}`],
  [
    'commit then a new transaction with a forged setting',
    `COMMIT; BEGIN; SELECT set_config('app.tenant_id', 'globex', true); ${Q}; COMMIT`,
  ],
  ['rollback then query outside any binding', `ROLLBACK; ${Q}`],
  ['DO block setting the value', `DO $$ BEGIN PERFORM set_config('app.tenant_id', 'globex', true); END $$; ${Q}`],
  [
    'bind() with a forged token',
    `SELECT tenantscope.bind('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32)); ${Q}`,
  ],
  [
    'bind_session() with a forged token',
    `SELECT tenantscope.bind_session('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32)); ${Q}`,
  ],
  ['read the key table', "SELECT encode(inner_key, 'hex') FROM tenantscope.binding_key"],
  [
    'create a function that sets it',
    `CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('app.tenant_id','globex',true) $$; ${Q}`,
  ],
  ['create a temp table to shadow', `CREATE TEMP TABLE customers AS SELECT * FROM public.customers; ${Q}`],
  ['current_tenant_id() with a forged search_path', `SET search_path = pg_temp, public; ${Q}`],
  [
    'security-barrier bypass via leaky function in WHERE',
    `SELECT * FROM customers WHERE tenant_id = 'globex' OR length(name) > 0`,
  ],
  ['a subquery against the raw setting', `SELECT * FROM customers WHERE tenant_id = (SELECT 'globex')`],
];
