/**
 * The doctor over tenant databases: every database the placement registry names for a tenant on
 * the dedicated tier is checked like the shared one (as the application role), plus what only a
 * tenant database can get wrong (a table missing, another tenant's rows in it), and every registry
 * entry stuck in a move. At most `concurrency` databases are open at once; each connection is closed.
 * @internal
 */
import pg from 'pg';
import type { DoctorClient, DoctorFacts, DoctorProblem, Findings } from './doctor-checks.ts';
import {
  installation,
  keyBinds,
  privilegedMemberships,
  readCurrentRole,
  readTenantTables,
  roleAttributes,
  tableSecurity,
  viewsOverTenantTables,
} from './doctor-checks.ts';
import { checkTierTarget } from './registry.ts';

export interface TenantDatabasesOptions {
  /** A pool (or client) on the database holding the placement registry (the shared database). Required. */
  registry: DoctorClient;
  /** Schema of the registry's `placements` table. Default `tenantscope_placement`. */
  registrySchema?: string;
  /**
   * URL of a tenant database as the application role, from the database name: what the
   * application's placement resolver connects to (e.g. `databaseUrl(appUrl, name)`). Required.
   */
  connectionString: (database: string) => string;
  /**
   * URL of a tenant database as a role that reads past row-level security (BYPASSRLS, SELECT
   * only), to count rows of other tenants there. Without it that count is not made (warning
   * TENANT_DB_ROWS_NOT_COUNTED): the application role sees only the tenant it binds.
   */
  inspectConnectionString?: (database: string) => string;
  /** Tenant databases checked at once (each on one connection, closed after). Default 4. */
  concurrency?: number;
  /** At most this many tenant databases are checked per run (warning TENANT_DBS_TRUNCATED). Default 1000. */
  maxDatabases?: number;
  /** A move whose registry entry has not changed for this long (ms) is stuck. Default 15 minutes. */
  stuckAfterMs?: number;
  /** Connect and query timeout per tenant database (ms). Default 10000. */
  timeoutMs?: number;
}

/** One tenant database checked: which tenants the registry places there, and its tenant tables. */
export interface TenantDatabaseReport {
  database: string;
  tenants: string[];
  tables: string[];
}

/** The shared-database checks that also make sense in a database of one tenant (not side channels, temp tables, schema create). */
const TENANT_DB_CHECKS = [
  roleAttributes,
  privilegedMemberships,
  installation,
  tableSecurity,
  viewsOverTenantTables,
  keyBinds,
];

/** Rows of another tenant counted up to this many per table. */
const FOREIGN_LIMIT = 1000;

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;
const quoteColumn = (c: string) => `"${c.replace(/"/g, '""')}"`;
const errText = (err: unknown) => {
  const e = err as { code?: string; message?: string };
  return `${e.code ?? 'error'}: ${String(e.message ?? err).slice(0, 200)}`;
};

interface RegistryRow {
  tenant: string;
  store: string;
  tier: string;
  target: string | null;
  state: string;
  other_tier: string | null;
  other_target: string | null;
  idle_s: number;
}

/**
 * Checks every tenant database and every unfinished move the registry holds. `shared` are the facts
 * of the shared database (its tenant tables are the ones every tenant database must have).
 */
export async function checkTenantDatabases(
  options: TenantDatabasesOptions,
  shared: Pick<DoctorFacts, 'options' | 'column' | 'tables' | 'probeToken'>,
): Promise<Findings & { databases: TenantDatabaseReport[] }> {
  const problems: DoctorProblem[] = [];
  const warnings: DoctorProblem[] = [];
  const schema = options.registrySchema ?? 'tenantscope_placement';
  if (!SCHEMA.test(schema)) throw new TypeError('tenantDatabases.registrySchema must be a lowercase identifier');
  const max = options.maxDatabases ?? 1000;
  const stuckAfterS = (options.stuckAfterMs ?? 15 * 60_000) / 1000;
  const exists = await options.registry.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    `"${schema}".placements`,
  ]);
  if (!exists.rows[0]?.ok) return { problems, warnings, databases: [] };

  let rows: RegistryRow[];
  try {
    rows = (
      await options.registry.query<RegistryRow>(
        `SELECT tenant, store, tier, target, state, other_tier, other_target,
                extract(epoch FROM now() - updated_at)::float8 AS idle_s
         FROM "${schema}".placements
         WHERE state <> 'active' OR (store = 'postgres' AND (tier = 'dedicated' OR other_tier = 'dedicated'))
         ORDER BY tenant, store LIMIT $1`,
        [max * 4 + 1],
      )
    ).rows;
  } catch (err) {
    problems.push({
      code: 'REGISTRY_UNREADABLE',
      object: `${schema}.placements`,
      message: `the placement registry cannot be read (${errText(err)})`,
    });
    return { problems, warnings, databases: [] };
  }

  // database -> the tenants placed there (now, or by a move in progress), and who lives there now.
  const placed = new Map<string, { tenants: Set<string>; current: Set<string> }>();
  for (const r of rows) {
    const object = `${r.tenant}/${r.store}`;
    let here: ReturnType<typeof checkTierTarget>;
    let other: ReturnType<typeof checkTierTarget> | null = null;
    try {
      if (r.store !== 'postgres' && r.store !== 's3' && r.store !== 'qdrant') throw new Error('store');
      here = checkTierTarget(r.store, r);
      if (r.other_tier !== null) other = checkTierTarget(r.store, { tier: r.other_tier, target: r.other_target });
    } catch {
      problems.push({ code: 'REGISTRY_ENTRY_INVALID', object, message: 'a placement entry this version cannot serve' });
      continue;
    }
    if (r.state !== 'active' && r.idle_s > stuckAfterS) {
      // Paused: the tenant's calls in this store fail until the move is finished or rolled back.
      const stuck: DoctorProblem = {
        code: 'PLACEMENT_MOVE_STUCK',
        object,
        message: `a move has been ${r.state} for ${Math.round(r.idle_s / 60)} min (a crashed \`tenant move\`?): rerun it to finish, or with --rollback${r.state === 'paused' ? '; the tenant’s calls in this store fail meanwhile' : ''}`,
      };
      (r.state === 'paused' ? problems : warnings).push(stuck);
    }
    if (r.store !== 'postgres') continue;
    for (const [t, now] of [
      [here, true],
      [other, false],
    ] as const) {
      if (t?.tier !== 'dedicated' || t.target === null) continue;
      const e = placed.get(t.target) ?? { tenants: new Set<string>(), current: new Set<string>() };
      e.tenants.add(r.tenant);
      if (now) e.current.add(r.tenant);
      placed.set(t.target, e);
    }
  }
  for (const [database, e] of placed) {
    if (e.current.size > 1) {
      problems.push({
        code: 'TENANT_DB_SHARED',
        database,
        message: `the registry places ${e.current.size} tenants in this tenant database: a dedicated database holds one`,
      });
    }
  }
  const all = [...placed.keys()].sort();
  if (all.length > max || rows.length > max * 4) {
    warnings.push({
      code: 'TENANT_DBS_TRUNCATED',
      message: `only the first ${Math.min(all.length, max)} tenant databases were checked (maxDatabases)`,
    });
  }
  const todo = all.slice(0, max);
  const databases: TenantDatabaseReport[] = [];
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 4, 32));
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const database = todo[next++] as string;
      const tenants = [...(placed.get(database)?.tenants ?? [])].sort();
      const found = await checkOne(options, shared, database, tenants);
      problems.push(...found.problems);
      warnings.push(...found.warnings);
      if (found.report) databases.push(found.report);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  databases.sort((a, b) => a.database.localeCompare(b.database));
  return { problems, warnings, databases };
}

function connect(url: string, timeoutMs: number): pg.Client {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  c.on('error', () => undefined);
  return c;
}

/** One tenant database: the shared checks as the app role, the tables, and (with an inspect role) foreign rows. */
async function checkOne(
  options: TenantDatabasesOptions,
  shared: Pick<DoctorFacts, 'options' | 'column' | 'tables' | 'probeToken'>,
  database: string,
  tenants: string[],
): Promise<Findings & { report?: TenantDatabaseReport }> {
  const problems: DoctorProblem[] = [];
  const warnings: DoctorProblem[] = [];
  const at = (p: DoctorProblem): DoctorProblem => ({ ...p, database, message: `database ${database}: ${p.message}` });
  const timeoutMs = options.timeoutMs ?? 10_000;
  let url: string;
  try {
    url = options.connectionString(database);
  } catch (err) {
    problems.push(at({ code: 'TENANT_DB_UNREACHABLE', message: `no connection string (${errText(err)})` }));
    return { problems, warnings };
  }
  const app = connect(url, timeoutMs);
  let tables: string[] = [];
  try {
    try {
      await app.connect();
    } catch (err) {
      problems.push(at({ code: 'TENANT_DB_UNREACHABLE', message: `cannot connect as the app role (${errText(err)})` }));
      return { problems, warnings };
    }
    const role = await readCurrentRole(app);
    if (!role) throw new Error('cannot read the current role');
    const installed = await app.query<{ ok: boolean }>(
      `SELECT to_regprocedure('tenantscope.current_tenant_id()') IS NOT NULL AS ok`,
    );
    const found = await readTenantTables(app, shared.column, shared.options.tables ?? []);
    tables = found.map((t) => t.name);
    const facts: DoctorFacts = {
      ...shared,
      client: app,
      role,
      installed: installed.rows[0]?.ok === true,
      tables: found,
    };
    for (const check of TENANT_DB_CHECKS) {
      const f = await check.run(facts);
      problems.push(...f.problems.map(at));
      warnings.push(...f.warnings.map(at));
    }
    const here = new Set(tables);
    for (const t of shared.tables) {
      if (!here.has(t.name)) {
        problems.push(
          at({
            code: 'TENANT_DB_TABLE_MISSING',
            object: t.name,
            message: `no tenant table ${t.name} (the shared database has it)`,
          }),
        );
      }
    }
  } catch (err) {
    problems.push(at({ code: 'TENANT_DB_UNREACHABLE', message: `the checks failed (${errText(err)})` }));
    return { problems, warnings };
  } finally {
    await app.end().catch(() => undefined);
  }

  if (!options.inspectConnectionString) {
    warnings.push(
      at({
        code: 'TENANT_DB_ROWS_NOT_COUNTED',
        message: 'rows of other tenants are not counted (set inspectConnectionString: a role that reads past RLS)',
      }),
    );
  } else {
    const f = await foreignRows(options.inspectConnectionString, database, shared.column, tenants, timeoutMs);
    problems.push(...f.problems.map(at));
    warnings.push(...f.warnings.map(at));
  }
  return { problems, warnings, report: { database, tenants, tables } };
}

/** TENANT_DB_FOREIGN_ROWS: rows whose tenant column is not a tenant the registry places in this database. */
async function foreignRows(
  inspectUrl: (database: string) => string,
  database: string,
  column: string,
  tenants: string[],
  timeoutMs: number,
): Promise<Findings> {
  const problems: DoctorProblem[] = [];
  const warnings: DoctorProblem[] = [];
  let c: pg.Client | undefined;
  try {
    c = connect(inspectUrl(database), timeoutMs);
    await c.connect();
    const role = await readCurrentRole(c);
    if (!role?.rolsuper && !role?.rolbypassrls) {
      warnings.push({
        code: 'TENANT_DB_ROWS_NOT_COUNTED',
        object: role?.rolname,
        message: 'the inspect role does not read past RLS (needs BYPASSRLS): rows of other tenants are not counted',
      });
      return { problems, warnings };
    }
    const col = quoteColumn(column);
    // Only tables that have the tenant column (named extra tables may not).
    for (const t of await readTenantTables(c, column, [])) {
      const r = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${t.name} WHERE ${col} IS NULL OR NOT (${col}::text = ANY ($1::text[])) LIMIT ${FOREIGN_LIMIT}) x`,
        [tenants],
      );
      const n = r.rows[0]?.n ?? 0;
      if (n > 0) {
        // The count only: never the other tenant's id or rows.
        problems.push({
          code: 'TENANT_DB_FOREIGN_ROWS',
          object: t.name,
          message: `${n >= FOREIGN_LIMIT ? `${FOREIGN_LIMIT} or more` : n} row(s) in ${t.name} belong to no tenant the registry places in this database`,
        });
      }
    }
  } catch (err) {
    warnings.push({
      code: 'TENANT_DB_ROWS_NOT_COUNTED',
      message: `rows of other tenants not counted (${errText(err)})`,
    });
  } finally {
    await c?.end().catch(() => undefined);
  }
  return { problems, warnings };
}
