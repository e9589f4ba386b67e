import type pg from 'pg';
import { pgError, wrapDriverError } from './errors.ts';
import { type Queryable, quoteIdent } from './sql.ts';

/**
 * Functions in `pg_catalog` that count or time activity across every tenant of the database
 * (or the cluster), beyond the `pg_stat*` family: relation sizes, the transaction-id and WAL
 * counters (they advance with every other tenant's write), commit timestamps, lock waits, and
 * sequence positions.
 */
export const CROSS_TENANT_FUNCTIONS = [
  'pg_sequence_last_value',
  'pg_relation_size',
  'pg_total_relation_size',
  'pg_table_size',
  'pg_indexes_size',
  'pg_database_size',
  'pg_tablespace_size',
  'txid_current',
  'txid_current_if_assigned',
  'txid_current_snapshot',
  'txid_status',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  'pg_current_snapshot',
  'pg_xact_status',
  'mxid_age',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_last_wal_receive_lsn',
  'pg_last_wal_replay_lsn',
  'pg_xact_commit_timestamp',
  'pg_xact_commit_timestamp_origin',
  'pg_last_committed_xact',
  'pg_lock_status',
  'pg_blocking_pids',
  'pg_safe_snapshot_blocking_pids',
  'pg_prepared_xact',
  // They run SQL given as a string, which would hide a function name from queryUntrusted's check.
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'ts_stat',
] as const;

/** Views in `pg_catalog` besides `pg_stat*` / `pg_statio*` that show other sessions' activity. */
export const CROSS_TENANT_VIEWS = ['pg_locks', 'pg_prepared_xacts', 'pg_sequences'] as const;

/** `pg_class` columns that hold row and page counts (the planner's statistics). */
export const PG_CLASS_COUNT_COLUMNS = ['reltuples', 'relpages', 'relallvisible', 'relallfrozen'] as const;

/** `pg_stat*` functions PostgreSQL already keeps from PUBLIC: never re-granted to monitoring roles. */
const NEVER_REGRANT = `p.proname LIKE 'pg\\_stat\\_reset%' OR p.proname IN ('pg_stat_file', 'pg_stat_force_next_flush')`;

export interface SideChannelGuardOptions {
  /**
   * Roles that keep what PUBLIC loses (monitoring). Default `['pg_read_all_stats']`, the predefined
   * monitoring role; pass `[]` to re-grant to nobody. Never list the application role.
   */
  grantTo?: string[];
}

const list = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

/**
 * Idempotent SQL that takes every cross-tenant statistic out of PUBLIC's reach in the current
 * database, so no role that runs tenant SQL can count other tenants' rows or writes:
 * - `REVOKE ALL … FROM PUBLIC` on every `pg_stat*` / `pg_statio*` view (row counts, inserts,
 *   `pg_stat_activity`'s query texts, `pg_stats`), `pg_stat_statements*` wherever installed, and
 *   `pg_locks`, `pg_prepared_xacts`, `pg_sequences`;
 * - `REVOKE EXECUTE … FROM PUBLIC` on every `pg_stat_*` function (they take a table oid) and on
 *   {@link CROSS_TENANT_FUNCTIONS} plus `age(xid)` and `ts_rewrite(tsquery, text)`;
 * - `pg_class`: SELECT on every column except {@link PG_CLASS_COUNT_COLUMNS};
 * - re-grants all of it to `grantTo` (monitoring).
 *
 * Catalog objects belong to the bootstrap superuser, so a superuser must run it, once per
 * database (run it in `template1` too, and databases created afterwards inherit it). Revocations
 * are per database: other databases of the cluster are untouched.
 */
export function sideChannelGuardSql(options: SideChannelGuardOptions = {}): string {
  const roles = (options.grantTo ?? ['pg_read_all_stats']).map((r) => quoteIdent(r, 'grantTo'));
  const regrant = (what: string, obj: string) =>
    roles.map((r) => `EXECUTE pg_catalog.format('GRANT ${what} ON %s TO ${r}', ${obj});`).join(' ');
  return `
DO $tsguard$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass::text AS obj FROM pg_catalog.pg_class c
    WHERE c.relkind = 'v'
      AND ((c.relnamespace = 'pg_catalog'::regnamespace
            AND (c.relname LIKE 'pg\\_stat%' OR c.relname IN (${list(CROSS_TENANT_VIEWS)})))
           OR c.relname LIKE 'pg\\_stat\\_statements%')
  LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', r.obj);
    ${regrant('SELECT', 'r.obj')}
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure::text AS fn, (${NEVER_REGRANT}) AS keep FROM pg_catalog.pg_proc p
    WHERE p.prokind = 'f'
      AND ((p.pronamespace = 'pg_catalog'::regnamespace
            AND (p.proname LIKE 'pg\\_stat\\_%' OR p.proname IN (${list(CROSS_TENANT_FUNCTIONS)})
                 OR p.oid IN ('pg_catalog.age(xid)'::regprocedure, 'pg_catalog.ts_rewrite(tsquery,text)'::regprocedure)))
           OR p.proname LIKE 'pg\\_stat\\_statements%')
  LOOP
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', r.fn);
    IF NOT r.keep THEN
      ${regrant('EXECUTE', "'FUNCTION ' || r.fn")}
    END IF;
  END LOOP;
  REVOKE SELECT ON pg_catalog.pg_class FROM PUBLIC;
  EXECUTE (
    SELECT pg_catalog.format('GRANT SELECT (%s) ON pg_catalog.pg_class TO PUBLIC', pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum))
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = 'pg_catalog.pg_class'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN (${list(PG_CLASS_COUNT_COLUMNS)})
  );
  ${roles.map((r) => `GRANT SELECT ON pg_catalog.pg_class TO ${r};`).join(' ')}
END
$tsguard$;`;
}

/**
 * Runs {@link sideChannelGuardSql} through a superuser connection to the application's database,
 * in one transaction under an advisory lock (replicas may start together). Idempotent. Throws
 * PG_SUPERUSER_REQUIRED for any other role.
 */
export async function installSideChannelGuards(
  superuser: Queryable,
  options: SideChannelGuardOptions = {},
): Promise<void> {
  const sql = sideChannelGuardSql(options);
  try {
    const who = await superuser.query<{ su: boolean }>(
      'SELECT rolsuper AS su FROM pg_catalog.pg_roles WHERE rolname = current_user',
    );
    if (!who.rows[0]?.su) {
      throw pgError(
        'PG_SUPERUSER_REQUIRED',
        'installSideChannelGuards needs a superuser: catalog views and functions belong to the bootstrap superuser',
      );
    }
    // One simple-protocol string is one implicit transaction: all of it or none.
    await superuser.query(`SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('tenantscope.guards')); ${sql}`);
  } catch (err) {
    throw wrapDriverError(err, 'installSideChannelGuards');
  }
}

interface Client {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** A finding of {@link sideChannelProblems}; `code` is stable. */
export interface SideChannelProblem {
  /**
   * STATS_READABLE (pg_stat* views/functions, pg_stats, pg_stat_statements), CATALOG_COUNTS_READABLE
   * (pg_class row/page counts, relation sizes), ACTIVITY_READABLE (transaction-id, WAL, commit, lock
   * and sequence-position functions and views), SHARED_SEQUENCE (a tenant table column fed by a
   * sequence or identity), SEQUENCE_USABLE (a sequence the role may read or advance),
   * SYSTEM_COLUMNS_READABLE (a tenant table whose xmin/ctid the role can select),
   * UNIQUE_ACROSS_TENANTS (a unique index on a tenant table without the tenant column).
   */
  code: string;
  object?: string;
  message: string;
  /** True for the findings only a superuser can fix (`installSideChannelGuards`). */
  needsSuperuser: boolean;
}

/**
 * Checks, as the connected (application) role, every way this package knows for tenant SQL to
 * count other tenants' rows or writes. `tableOids` are the tenant tables.
 */
export async function sideChannelProblems(
  client: Client,
  tableOids: number[],
  tenantColumn = 'tenant_id',
): Promise<SideChannelProblem[]> {
  const out: SideChannelProblem[] = [];
  const readable = await client.query<{ kind: string; name: string }>(
    `SELECT CASE WHEN c.relname IN (${list(CROSS_TENANT_VIEWS)}) THEN 'activity' ELSE 'stats' END AS kind, c.oid::regclass::text AS name
       FROM pg_catalog.pg_class c
      WHERE c.relkind = 'v'
        AND ((c.relnamespace = 'pg_catalog'::regnamespace AND (c.relname LIKE 'pg\\_stat%' OR c.relname IN (${list(CROSS_TENANT_VIEWS)})))
             OR c.relname LIKE 'pg\\_stat\\_statements%')
        AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
     UNION ALL
     SELECT CASE WHEN p.proname LIKE 'pg\\_stat%' THEN 'stats'
                 WHEN p.proname ~ '(size|^pg_sequence_last_value)$' THEN 'counts' ELSE 'activity' END,
            p.oid::regprocedure::text
       FROM pg_catalog.pg_proc p
      WHERE p.prokind = 'f'
        AND ((p.pronamespace = 'pg_catalog'::regnamespace
              AND ((p.proname LIKE 'pg\\_stat\\_%' AND NOT (${NEVER_REGRANT})) OR p.proname IN (${list(CROSS_TENANT_FUNCTIONS)})
                   OR p.oid IN ('pg_catalog.age(xid)'::regprocedure, 'pg_catalog.ts_rewrite(tsquery,text)'::regprocedure)))
             OR p.proname LIKE 'pg\\_stat\\_statements%')
        AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')
     UNION ALL
     SELECT 'counts', 'pg_catalog.pg_class.' || col FROM pg_catalog.unnest(ARRAY[${list(PG_CLASS_COUNT_COLUMNS)}]) col
      WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'pg_catalog.pg_class'::regclass AND a.attname = col)
                 THEN pg_catalog.has_column_privilege('pg_catalog.pg_class'::regclass, col, 'SELECT') END
     ORDER BY 1, 2`,
  );
  const groups: [string, string, string][] = [
    ['stats', 'STATS_READABLE', 'statistics views/functions count every tenant'],
    ['counts', 'CATALOG_COUNTS_READABLE', 'catalog row/page counts and relation sizes count every tenant'],
    ['activity', 'ACTIVITY_READABLE', 'transaction-id, WAL, lock and sequence counters move with every tenant'],
  ];
  for (const [kind, code, what] of groups) {
    const names = readable.rows.filter((r) => r.kind === kind).map((r) => r.name);
    if (names.length === 0) continue;
    out.push({
      code,
      object: names[0],
      message: `the role can read ${names.length} object(s) where ${what} (e.g. ${names.slice(0, 3).join(', ')}); run installSideChannelGuards as a superuser`,
      needsSuperuser: true,
    });
  }
  if (tableOids.length > 0) {
    const seqCols = await client.query<{ name: string }>(
      `SELECT pg_catalog.format('%I.%I.%I', n.nspname, c.relname, a.attname) AS name
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.attidentity <> '' OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) ~ '\\mnextval\\(')
        ORDER BY 1`,
      [tableOids],
    );
    for (const r of seqCols.rows) {
      out.push({
        code: 'SHARED_SEQUENCE',
        object: r.name,
        message: `${r.name} takes values from a sequence shared by every tenant; use uuid DEFAULT tenantscope.uuidv7()`,
        needsSuperuser: false,
      });
    }
    // A unique index without the tenant column answers "does another tenant have this value?"
    // (a write conflicts: 23505). One uuid column is exempt: its values cannot be guessed.
    const uniq = await client.query<{ name: string }>(
      `SELECT pg_catalog.format('%I.%I.%I', n.nspname, c.relname, ic.relname) AS name
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = ANY ($1::oid[]) AND i.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) AND a.attname = $2)
          AND NOT (i.indnatts = 1 AND i.indexprs IS NULL AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0] AND a.atttypid = 'pg_catalog.uuid'::regtype))
        ORDER BY 1`,
      [tableOids, tenantColumn],
    );
    for (const r of uniq.rows) {
      out.push({
        code: 'UNIQUE_ACROSS_TENANTS',
        object: r.name,
        message: `unique index ${r.name} does not include the tenant column: a conflicting write tells a tenant that another one has the value`,
        needsSuperuser: false,
      });
    }
    const sys = await client.query<{ name: string }>(
      `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = ANY ($1::oid[])
          AND (pg_catalog.has_column_privilege(c.oid, 'xmin', 'SELECT') OR pg_catalog.has_column_privilege(c.oid, 'ctid', 'SELECT'))
        ORDER BY 1`,
      [tableOids],
    );
    for (const r of sys.rows) {
      out.push({
        code: 'SYSTEM_COLUMNS_READABLE',
        object: r.name,
        message: `the role can select xmin/ctid of ${r.name} (a global transaction counter and heap position); grant SELECT by column (tenantTableSql does)`,
        needsSuperuser: false,
      });
    }
  }
  const seqs = await client.query<{ name: string }>(
    `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        AND CASE WHEN c.relkind = 'S' THEN pg_catalog.has_sequence_privilege(c.oid, 'USAGE, SELECT, UPDATE') END
      ORDER BY 1`,
  );
  for (const r of seqs.rows) {
    out.push({
      code: 'SEQUENCE_USABLE',
      object: r.name,
      message: `the role may read or advance sequence ${r.name}, whose position moves with every tenant's inserts`,
      needsSuperuser: false,
    });
  }
  return out;
}
