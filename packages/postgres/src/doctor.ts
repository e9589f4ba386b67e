import type pg from 'pg';
import { pgError, wrapDriverError } from './errors.ts';
import { sideChannelProblems } from './side-channels.ts';
import { TENANT_POLICY_NAME } from './sql.ts';

export interface DoctorOptions {
  /** Column that marks a tenant table. Every table with it is checked. Default `tenant_id`. */
  tenantColumn?: string;
  /** More tables to treat as tenant tables (schema-qualified or in the search path). */
  tables?: string[];
  /** Accept a role that may create temporary tables (they outlive a transaction on a pooled connection). Default false. */
  allowTempTables?: boolean;
  /**
   * Accept cross-tenant statistics the role can read (STATS_READABLE, CATALOG_COUNTS_READABLE,
   * ACTIVITY_READABLE) as warnings, where no superuser can run `installSideChannelGuards` (some
   * managed services). Default false: they stop the start.
   */
  allowSideChannels?: boolean;
}

export interface DoctorProblem {
  /** Stable code: POOLER_MISMATCH, POOLER_NOT_SEEN, ROLE_SUPERUSER, ROLE_BYPASSRLS, ROLE_CAN_BECOME_PRIVILEGED, ROLE_OWNS_TABLE, RLS_NOT_ENABLED, RLS_NOT_FORCED, POLICY_MISSING, POLICY_TOO_BROAD, VIEW_NOT_SECURITY_INVOKER, MATVIEW_OVER_TENANT_TABLE, NOT_INSTALLED, KEY_READABLE, BINDING_FAILED, TEMP_TABLES_ALLOWED, STATS_READABLE, CATALOG_COUNTS_READABLE, ACTIVITY_READABLE, SHARED_SEQUENCE, SEQUENCE_USABLE, SYSTEM_COLUMNS_READABLE, UNIQUE_ACROSS_TENANTS. */
  code: string;
  /** The object concerned (role, table, view), when there is one. */
  object?: string;
  message: string;
}

export interface DoctorReport {
  role: string;
  /** Tenant tables found and checked. */
  tables: string[];
  /** Things worth knowing that do not stop the start. */
  warnings: DoctorProblem[];
}

interface Client {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * Start-up checks on the role the application connects as. Throws PG_DOCTOR_FAILED with
 * `details.problems` listing every problem found, or returns a report.
 * `probeToken` is a client token for the probe tenant `doctor-probe`, to prove the key binds.
 */
export async function runDoctor(
  client: Client,
  options: DoctorOptions,
  probeToken: string,
  /** Findings of checks that ran before, on other connections (the pooler check). */
  pre: { problems?: DoctorProblem[]; warnings?: DoctorProblem[] } = {},
): Promise<DoctorReport> {
  const problems: DoctorProblem[] = [...(pre.problems ?? [])];
  const warnings: DoctorProblem[] = [...(pre.warnings ?? [])];
  const col = options.tenantColumn ?? 'tenant_id';
  try {
    const role = (
      await client.query<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean }>(
        'SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user',
      )
    ).rows[0];
    if (!role) throw pgError('PG_DOCTOR_FAILED', 'cannot read the current role');
    if (role.rolsuper)
      problems.push({
        code: 'ROLE_SUPERUSER',
        object: role.rolname,
        message: 'the role is a superuser: RLS does not apply',
      });
    if (role.rolbypassrls)
      problems.push({ code: 'ROLE_BYPASSRLS', object: role.rolname, message: 'the role has BYPASSRLS' });
    const privileged = await client.query<{ rolname: string }>(
      `SELECT r.rolname FROM pg_roles r
       WHERE (r.rolsuper OR r.rolbypassrls) AND r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER')`,
    );
    for (const r of privileged.rows) {
      problems.push({
        code: 'ROLE_CAN_BECOME_PRIVILEGED',
        object: r.rolname,
        message: `the role can SET ROLE to ${r.rolname}, which bypasses RLS`,
      });
    }

    const installed = await client.query<{ ok: boolean; readable: boolean | null }>(
      `SELECT to_regprocedure('tenantscope.current_tenant_id()') IS NOT NULL AS ok,
              CASE WHEN to_regclass('tenantscope.binding_key') IS NULL THEN NULL
                   ELSE has_table_privilege('tenantscope.binding_key', 'SELECT') OR has_table_privilege('tenantscope.binding_key', 'UPDATE') END AS readable`,
    );
    const inst = installed.rows[0];
    if (!inst?.ok)
      problems.push({ code: 'NOT_INSTALLED', message: 'schema tenantscope is not installed (installTenantScope)' });
    if (inst?.readable)
      problems.push({
        code: 'KEY_READABLE',
        object: 'tenantscope.binding_key',
        message: 'the role can read or change the binding key',
      });

    // Tenant tables: every table with the tenant column, plus the ones named.
    const tables = await client.query<{
      oid: number;
      name: string;
      owned: boolean;
      enabled: boolean;
      forced: boolean;
    }>(
      `SELECT c.oid::int AS oid, format('%I.%I', n.nspname, c.relname) AS name,
              pg_has_role(current_user, c.relowner, 'USAGE') AS owned,
              c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p')
         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantscope') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
         AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $1 AND NOT a.attisdropped AND a.attnum > 0)
              OR c.oid = ANY (SELECT to_regclass(t)::oid FROM unnest($2::text[]) t))
       ORDER BY 2`,
      [col, options.tables ?? []],
    );
    const policies = await client.query<{
      table_oid: number;
      name: string;
      permissive: boolean;
      cmd: string;
      qual: string | null;
      check: string | null;
    }>(
      `SELECT p.polrelid::int AS table_oid, p.polname AS name, p.polpermissive AS permissive, p.polcmd::text AS cmd,
              pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS check
       FROM pg_policy p
       WHERE p.polrelid = ANY ($1::oid[])
         AND (p.polroles = '{0}' OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE pg_has_role(current_user, r, 'MEMBER')))`,
      [tables.rows.map((t) => t.oid)],
    );
    const fn = /tenantscope\.current_tenant_id\(\)/;
    for (const t of tables.rows) {
      if (t.owned) problems.push({ code: 'ROLE_OWNS_TABLE', object: t.name, message: `the role owns ${t.name}` });
      if (!t.enabled)
        problems.push({
          code: 'RLS_NOT_ENABLED',
          object: t.name,
          message: `${t.name} does not ENABLE row level security`,
        });
      if (!t.forced)
        problems.push({
          code: 'RLS_NOT_FORCED',
          object: t.name,
          message: `${t.name} does not FORCE row level security`,
        });
      const mine = policies.rows.filter((p) => p.table_oid === t.oid);
      const good = mine.some(
        (p) => p.cmd === '*' && p.qual !== null && fn.test(p.qual) && (p.check === null || fn.test(p.check)),
      );
      if (!good) {
        problems.push({
          code: 'POLICY_MISSING',
          object: t.name,
          message: `${t.name} has no FOR ALL policy checking tenantscope.current_tenant_id() (see tenantTableSql, policy ${TENANT_POLICY_NAME})`,
        });
      }
      for (const p of mine) {
        const broad =
          p.permissive && ((p.qual !== null && !fn.test(p.qual)) || (p.check !== null && !fn.test(p.check)));
        if (broad)
          problems.push({
            code: 'POLICY_TOO_BROAD',
            object: `${t.name}.${p.name}`,
            message: `permissive policy ${p.name} on ${t.name} does not check the tenant`,
          });
      }
    }

    // Views (transitively) over tenant tables.
    if (tables.rows.length > 0) {
      const views = await client.query<{ name: string; kind: string; invoker: boolean }>(
        `WITH RECURSIVE dep(oid) AS (
           SELECT unnest($1::oid[])
           UNION
           SELECT rw.ev_class FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
           JOIN dep ON d.refobjid = dep.oid AND d.refclassid = 'pg_class'::regclass
           WHERE rw.ev_class <> dep.oid
         )
         SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind,
                coalesce(EXISTS (SELECT 1 FROM unnest(c.reloptions) o WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes')), false) AS invoker
         FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND has_table_privilege(c.oid, 'SELECT')
         ORDER BY 1`,
        [tables.rows.map((t) => t.oid)],
      );
      for (const v of views.rows) {
        if (v.kind === 'm') {
          problems.push({
            code: 'MATVIEW_OVER_TENANT_TABLE',
            object: v.name,
            message: `materialized view ${v.name} holds tenant rows without RLS`,
          });
        } else if (!v.invoker) {
          problems.push({
            code: 'VIEW_NOT_SECURITY_INVOKER',
            object: v.name,
            message: `view ${v.name} reads tenant tables without security_invoker`,
          });
        }
      }
    }

    const temp = await client.query<{ temp: boolean }>(
      `SELECT has_database_privilege(current_database(), 'TEMP') AS temp`,
    );
    if (temp.rows[0]?.temp) {
      const p = {
        code: 'TEMP_TABLES_ALLOWED',
        object: role.rolname,
        message:
          'the role may create temporary tables, which outlive a transaction on a pooled connection (REVOKE TEMP ON DATABASE … FROM PUBLIC)',
      };
      (options.allowTempTables ? warnings : problems).push(p);
    }
    // Side channels: what lets tenant SQL count other tenants' rows or writes.
    for (const { needsSuperuser, ...p } of await sideChannelProblems(
      client,
      tables.rows.map((t) => t.oid),
      col,
    )) {
      (needsSuperuser && options.allowSideChannels ? warnings : problems).push(p);
    }
    const create = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'`,
    );
    for (const s of create.rows) {
      warnings.push({
        code: 'SCHEMA_CREATE_ALLOWED',
        object: s.nspname,
        message: `the role may create objects in schema ${s.nspname}`,
      });
    }

    if (inst?.ok) {
      // Prove the configured key binds: a probe tenant, in a transaction that is rolled back.
      await client.query('BEGIN');
      try {
        await client.query('SELECT tenantscope.bind($1)', [probeToken]);
        const r = await client.query<{ t: string | null }>('SELECT tenantscope.current_tenant_id() AS t');
        if (r.rows[0]?.t !== 'doctor-probe') throw new Error('probe not bound');
      } catch (err) {
        problems.push({
          code: 'BINDING_FAILED',
          message: `the binding key does not bind here (${(err as { code?: string }).code ?? 'mismatch'})`,
        });
      } finally {
        await client.query('ROLLBACK');
      }
    }

    if (problems.length > 0) {
      throw pgError(
        'PG_DOCTOR_FAILED',
        `refusing to start: ${problems.map((p) => p.code + (p.object ? ` (${p.object})` : '')).join(', ')}`,
        { details: { problems, warnings } },
      );
    }
    return { role: role.rolname, tables: tables.rows.map((t) => t.name), warnings };
  } catch (err) {
    throw wrapDriverError(err, 'doctor');
  }
}
