import {
  DOCTOR_CHECKS,
  type DoctorClient,
  type DoctorFacts,
  type DoctorProblem,
  readCurrentRole,
  readTenantTables,
} from './doctor-checks.ts';
import { checkTenantDatabases, type TenantDatabaseReport, type TenantDatabasesOptions } from './doctor-tenants.ts';
import { pgError, wrapDriverError } from './errors.ts';

export {
  DOCTOR_PROBLEM_CODES,
  type DoctorProblem,
  type DoctorProblemCode,
  TENANT_DB_CODES,
} from './doctor-checks.ts';
export type { TenantDatabaseReport, TenantDatabasesOptions } from './doctor-tenants.ts';

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
  /**
   * Also check every tenant database the placement registry names (the dedicated tier): the
   * checks above that apply there (role, installation and binding key, RLS enabled and forced
   * with the tenant policy, views) as the application role, the shared database's tenant tables
   * present, no rows of another tenant (with `inspectConnectionString`), and no move stuck in the
   * registry. Problems found there carry `database`. Off when not set.
   */
  tenantDatabases?: TenantDatabasesOptions;
}

export interface DoctorReport {
  role: string;
  /** Tenant tables found and checked. */
  tables: string[];
  /** Things worth knowing that do not stop the start. */
  warnings: DoctorProblem[];
  /** With `tenantDatabases`: each tenant database checked (those the connection could not reach are problems). */
  databases?: TenantDatabaseReport[];
}

/**
 * Start-up checks on the role the application connects as. Throws PG_DOCTOR_FAILED with
 * `details.problems` listing every problem found, or returns a report.
 * `probeToken` is a client token for the probe tenant `doctor-probe`, to prove the key binds.
 * The checks themselves are in doctor-checks.ts, one function each.
 */
export async function runDoctor(
  client: DoctorClient,
  options: DoctorOptions,
  probeToken: string,
  /** Findings of checks that ran before, on other connections (the pooler check). */
  pre: { problems?: DoctorProblem[]; warnings?: DoctorProblem[] } = {},
): Promise<DoctorReport> {
  const problems: DoctorProblem[] = [...(pre.problems ?? [])];
  const warnings: DoctorProblem[] = [...(pre.warnings ?? [])];
  try {
    const facts = await readFacts(client, options, probeToken);
    for (const check of DOCTOR_CHECKS) {
      const found = await check.run(facts);
      problems.push(...found.problems);
      warnings.push(...found.warnings);
    }
    let databases: TenantDatabaseReport[] | undefined;
    if (options.tenantDatabases) {
      const found = await checkTenantDatabases(options.tenantDatabases, facts);
      problems.push(...found.problems);
      warnings.push(...found.warnings);
      databases = found.databases;
    }
    if (problems.length > 0) {
      throw pgError(
        'PG_DOCTOR_FAILED',
        `refusing to start: ${problems.map((p) => p.code + (p.object || p.database ? ` (${[p.database, p.object].filter(Boolean).join(': ')})` : '')).join(', ')}`,
        { details: { problems, warnings, ...(databases ? { databases } : {}) } },
      );
    }
    return {
      role: facts.role.rolname,
      tables: facts.tables.map((t) => t.name),
      warnings,
      ...(databases ? { databases } : {}),
    };
  } catch (err) {
    throw wrapDriverError(err, 'doctor');
  }
}

/** What every check may need: the role, whether tenantscope is installed, the tenant tables. */
async function readFacts(client: DoctorClient, options: DoctorOptions, probeToken: string): Promise<DoctorFacts> {
  const role = await readCurrentRole(client);
  if (!role) throw pgError('PG_DOCTOR_FAILED', 'cannot read the current role');
  const installed = await client.query<{ ok: boolean }>(
    `SELECT to_regprocedure('tenantscope.current_tenant_id()') IS NOT NULL AS ok`,
  );
  const column = options.tenantColumn ?? 'tenant_id';
  const tables = await readTenantTables(client, column, options.tables ?? []);
  return { client, options, column, role, installed: installed.rows[0]?.ok === true, tables, probeToken };
}
