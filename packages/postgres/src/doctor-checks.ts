/**
 * The doctor's checks, one function each, in the order they report. Each reads what it needs as
 * the application role and returns its findings; {@link runDoctor} runs them in sequence on one
 * connection. The codes a check may emit are declared beside it.
 * @internal
 */
import type pg from 'pg';
import type { DoctorOptions } from './doctor.ts';
import { sideChannelProblems } from './side-channels.ts';
import { TENANT_POLICY_NAME } from './sql.ts';

/**
 * The codes of the checks over tenant databases (`DoctorOptions.tenantDatabases`), beside the
 * codes of the checks below, which are reported with `database` set when found in a tenant database.
 * - REGISTRY_UNREADABLE, REGISTRY_ENTRY_INVALID (problems): the placement registry cannot be read, or holds a row this version cannot serve.
 * - PLACEMENT_MOVE_STUCK: a move unchanged for longer than `stuckAfterMs` (a crashed `tenant move`):
 *   a problem when paused (the tenant's calls in that store fail), a warning when copying or in cleanup.
 * - TENANT_DB_SHARED (problem): the registry places several tenants in one tenant database.
 * - TENANT_DBS_TRUNCATED (warning): more tenant databases than `maxDatabases`; the rest were not checked.
 * - TENANT_DB_UNREACHABLE (problem): the application role cannot connect, or the checks failed there.
 * - TENANT_DB_TABLE_MISSING (problem): a tenant table of the shared database is not there.
 * - TENANT_DB_ROWS_NOT_COUNTED (warning): no inspect role (or one that does not read past RLS).
 * - TENANT_DB_FOREIGN_ROWS (problem): rows of a tenant the registry does not place there.
 */
export const TENANT_DB_CODES = [
  'REGISTRY_UNREADABLE',
  'REGISTRY_ENTRY_INVALID',
  'PLACEMENT_MOVE_STUCK',
  'TENANT_DB_SHARED',
  'TENANT_DBS_TRUNCATED',
  'TENANT_DB_UNREACHABLE',
  'TENANT_DB_TABLE_MISSING',
  'TENANT_DB_ROWS_NOT_COUNTED',
  'TENANT_DB_FOREIGN_ROWS',
] as const;

/** Every code the doctor reports, as problems (stop the start) or warnings. */
export const DOCTOR_PROBLEM_CODES = [
  'POOLER_MISMATCH',
  'POOLER_NOT_SEEN',
  'ROLE_SUPERUSER',
  'ROLE_BYPASSRLS',
  'ROLE_CAN_BECOME_PRIVILEGED',
  'ROLE_OWNS_TABLE',
  'RLS_NOT_ENABLED',
  'RLS_NOT_FORCED',
  'POLICY_MISSING',
  'POLICY_TOO_BROAD',
  'VIEW_NOT_SECURITY_INVOKER',
  'MATVIEW_OVER_TENANT_TABLE',
  'NOT_INSTALLED',
  'KEY_READABLE',
  'BINDING_FAILED',
  'TEMP_TABLES_ALLOWED',
  'STATS_READABLE',
  'CATALOG_COUNTS_READABLE',
  'ACTIVITY_READABLE',
  'SHARED_SEQUENCE',
  'SEQUENCE_USABLE',
  'SYSTEM_COLUMNS_READABLE',
  'UNIQUE_ACROSS_TENANTS',
  'SCHEMA_CREATE_ALLOWED',
  ...TENANT_DB_CODES,
] as const;

/** A stable doctor finding code; callers switch on it. */
export type DoctorProblemCode = (typeof DOCTOR_PROBLEM_CODES)[number];

export interface DoctorProblem {
  /** Stable code, one of {@link DOCTOR_PROBLEM_CODES}. */
  code: DoctorProblemCode;
  /** The object concerned (role, table, view), when there is one. */
  object?: string;
  /** The tenant database concerned (`DoctorOptions.tenantDatabases`); absent for the database the pool connects to. */
  database?: string;
  message: string;
}

/** What one check found: problems stop the start, warnings are reported. */
export interface Findings {
  problems: DoctorProblem[];
  warnings: DoctorProblem[];
}

export interface DoctorClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface CurrentRole {
  rolname: string;
  rolsuper: boolean;
  rolbypassrls: boolean;
}

export interface TenantTable {
  oid: number;
  name: string;
  owned: boolean;
  enabled: boolean;
  forced: boolean;
}

/** What the checks share, read once before they run. */
export interface DoctorFacts {
  client: DoctorClient;
  options: DoctorOptions;
  /** The tenant column (default applied). */
  column: string;
  role: CurrentRole;
  /** Whether `tenantscope.current_tenant_id()` exists. */
  installed: boolean;
  tables: TenantTable[];
  /** A client token for the probe tenant `doctor-probe`. */
  probeToken: string;
}

/** One check: its name, the codes it may emit, and the check itself. */
export interface DoctorCheck {
  readonly name: string;
  readonly codes: readonly DoctorProblemCode[];
  run(facts: DoctorFacts): Promise<Findings>;
}

const CURRENT_TENANT_FN = /tenantscope\.current_tenant_id\(\)/;

function found(problems: DoctorProblem[] = [], warnings: DoctorProblem[] = []): Findings {
  return { problems, warnings };
}

/** The role the application connects as; null when it cannot be read. */
export async function readCurrentRole(client: DoctorClient): Promise<CurrentRole | null> {
  const r = await client.query<CurrentRole>(
    'SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user',
  );
  return r.rows[0] ?? null;
}

/** Every table with the tenant column, plus the ones named in `options.tables`. */
export async function readTenantTables(
  client: DoctorClient,
  column: string,
  named: readonly string[],
): Promise<TenantTable[]> {
  const tables = await client.query<TenantTable>(
    `SELECT c.oid::int AS oid, format('%I.%I', n.nspname, c.relname) AS name,
            pg_has_role(current_user, c.relowner, 'USAGE') AS owned,
            c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantscope') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
       AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $1 AND NOT a.attisdropped AND a.attnum > 0)
            OR c.oid = ANY (SELECT to_regclass(t)::oid FROM unnest($2::text[]) t))
     ORDER BY 2`,
    [column, named],
  );
  return tables.rows;
}

/** ROLE_SUPERUSER, ROLE_BYPASSRLS: the role itself bypasses RLS. */
export const roleAttributes: DoctorCheck = {
  name: 'role attributes',
  codes: ['ROLE_SUPERUSER', 'ROLE_BYPASSRLS'],
  async run({ role }) {
    const problems: DoctorProblem[] = [];
    if (role.rolsuper) {
      problems.push({
        code: 'ROLE_SUPERUSER',
        object: role.rolname,
        message: 'the role is a superuser: RLS does not apply',
      });
    }
    if (role.rolbypassrls) {
      problems.push({ code: 'ROLE_BYPASSRLS', object: role.rolname, message: 'the role has BYPASSRLS' });
    }
    return found(problems);
  },
};

/** ROLE_CAN_BECOME_PRIVILEGED: the role may SET ROLE to one that bypasses RLS. */
export const privilegedMemberships: DoctorCheck = {
  name: 'privileged memberships',
  codes: ['ROLE_CAN_BECOME_PRIVILEGED'],
  async run({ client }) {
    const privileged = await client.query<{ rolname: string }>(
      `SELECT r.rolname FROM pg_roles r
       WHERE (r.rolsuper OR r.rolbypassrls) AND r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER')`,
    );
    return found(
      privileged.rows.map((r) => ({
        code: 'ROLE_CAN_BECOME_PRIVILEGED',
        object: r.rolname,
        message: `the role can SET ROLE to ${r.rolname}, which bypasses RLS`,
      })),
    );
  },
};

/** NOT_INSTALLED, KEY_READABLE: the tenantscope schema is there and its key is out of reach. */
export const installation: DoctorCheck = {
  name: 'installation',
  codes: ['NOT_INSTALLED', 'KEY_READABLE'],
  async run({ client, installed }) {
    const problems: DoctorProblem[] = [];
    if (!installed) {
      problems.push({ code: 'NOT_INSTALLED', message: 'schema tenantscope is not installed (installTenantScope)' });
    }
    const key = await client.query<{ readable: boolean | null }>(
      `SELECT CASE WHEN to_regclass('tenantscope.binding_key') IS NULL THEN NULL
                   ELSE has_table_privilege('tenantscope.binding_key', 'SELECT') OR has_table_privilege('tenantscope.binding_key', 'UPDATE') END AS readable`,
    );
    if (key.rows[0]?.readable) {
      problems.push({
        code: 'KEY_READABLE',
        object: 'tenantscope.binding_key',
        message: 'the role can read or change the binding key',
      });
    }
    return found(problems);
  },
};

/** ROLE_OWNS_TABLE, RLS_NOT_ENABLED, RLS_NOT_FORCED, POLICY_MISSING, POLICY_TOO_BROAD: per tenant table. */
export const tableSecurity: DoctorCheck = {
  name: 'tenant tables',
  codes: ['ROLE_OWNS_TABLE', 'RLS_NOT_ENABLED', 'RLS_NOT_FORCED', 'POLICY_MISSING', 'POLICY_TOO_BROAD'],
  async run({ client, tables }) {
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
      [tables.map((t) => t.oid)],
    );
    const fn = CURRENT_TENANT_FN;
    const problems: DoctorProblem[] = [];
    for (const t of tables) {
      if (t.owned) problems.push({ code: 'ROLE_OWNS_TABLE', object: t.name, message: `the role owns ${t.name}` });
      if (!t.enabled) {
        problems.push({
          code: 'RLS_NOT_ENABLED',
          object: t.name,
          message: `${t.name} does not ENABLE row level security`,
        });
      }
      if (!t.forced) {
        problems.push({
          code: 'RLS_NOT_FORCED',
          object: t.name,
          message: `${t.name} does not FORCE row level security`,
        });
      }
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
        if (broad) {
          problems.push({
            code: 'POLICY_TOO_BROAD',
            object: `${t.name}.${p.name}`,
            message: `permissive policy ${p.name} on ${t.name} does not check the tenant`,
          });
        }
      }
    }
    return found(problems);
  },
};

/** VIEW_NOT_SECURITY_INVOKER, MATVIEW_OVER_TENANT_TABLE: views (transitively) over tenant tables. */
export const viewsOverTenantTables: DoctorCheck = {
  name: 'views over tenant tables',
  codes: ['VIEW_NOT_SECURITY_INVOKER', 'MATVIEW_OVER_TENANT_TABLE'],
  async run({ client, tables }) {
    if (tables.length === 0) return found();
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
      [tables.map((t) => t.oid)],
    );
    const problems: DoctorProblem[] = [];
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
    return found(problems);
  },
};

/** TEMP_TABLES_ALLOWED: a warning with `allowTempTables`, else a problem. */
export const tempTables: DoctorCheck = {
  name: 'temporary tables',
  codes: ['TEMP_TABLES_ALLOWED'],
  async run({ client, role, options }) {
    const temp = await client.query<{ temp: boolean }>(
      `SELECT has_database_privilege(current_database(), 'TEMP') AS temp`,
    );
    if (!temp.rows[0]?.temp) return found();
    const p: DoctorProblem = {
      code: 'TEMP_TABLES_ALLOWED',
      object: role.rolname,
      message:
        'the role may create temporary tables, which outlive a transaction on a pooled connection (REVOKE TEMP ON DATABASE … FROM PUBLIC)',
    };
    return options.allowTempTables ? found([], [p]) : found([p]);
  },
};

/** The codes `sideChannelProblems` emits (checked against its source by doctor-checks.test.ts). */
const SIDE_CHANNEL_CODES = [
  'STATS_READABLE',
  'CATALOG_COUNTS_READABLE',
  'ACTIVITY_READABLE',
  'SHARED_SEQUENCE',
  'UNIQUE_ACROSS_TENANTS',
  'SYSTEM_COLUMNS_READABLE',
  'SEQUENCE_USABLE',
] as const satisfies readonly DoctorProblemCode[];

/**
 * Side channels: what lets tenant SQL count other tenants' rows or writes. The ones only a
 * superuser can fix are warnings with `allowSideChannels`.
 */
export const sideChannels: DoctorCheck = {
  name: 'side channels',
  codes: SIDE_CHANNEL_CODES,
  async run({ client, tables, column, options }) {
    const out = found();
    for (const { needsSuperuser, code, ...rest } of await sideChannelProblems(
      client,
      tables.map((t) => t.oid),
      column,
    )) {
      // side-channels.ts types its codes as strings; doctor-checks.test.ts proves each is in SIDE_CHANNEL_CODES.
      const p: DoctorProblem = { code: code as DoctorProblemCode, ...rest };
      (needsSuperuser && options.allowSideChannels ? out.warnings : out.problems).push(p);
    }
    return out;
  },
};

/** SCHEMA_CREATE_ALLOWED (warning): schemas the role may create objects in. */
export const schemaCreate: DoctorCheck = {
  name: 'schema create',
  codes: ['SCHEMA_CREATE_ALLOWED'],
  async run({ client }) {
    const create = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'`,
    );
    return found(
      [],
      create.rows.map((s) => ({
        code: 'SCHEMA_CREATE_ALLOWED',
        object: s.nspname,
        message: `the role may create objects in schema ${s.nspname}`,
      })),
    );
  },
};

/** BINDING_FAILED: the configured key binds a probe tenant, in a transaction that is rolled back. */
export const keyBinds: DoctorCheck = {
  name: 'key binds',
  codes: ['BINDING_FAILED'],
  async run({ client, installed, probeToken }) {
    if (!installed) return found();
    const problems: DoctorProblem[] = [];
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
    return found(problems);
  },
};

/** The checks in report order. (The pooler check runs before, on other connections: doctor-pooler.ts.) */
export const DOCTOR_CHECKS: readonly DoctorCheck[] = [
  roleAttributes,
  privilegedMemberships,
  installation,
  tableSecurity,
  viewsOverTenantTables,
  tempTables,
  sideChannels,
  schemaCreate,
  keyBinds,
];
