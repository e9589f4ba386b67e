import type { QueryResult, QueryResultRow } from 'pg';
import {
  BINDING_KEY_BYTES,
  DEFAULT_TENANT_SETTING,
  generateBindingKey,
  normaliseBindingKey,
  paddedKeys,
} from './binding.ts';
import { FENCE_SQLSTATE, pgError, wrapDriverError } from './errors.ts';
import { fenceKeySql } from './fence.ts';

/** Anything that can run a query: a `pg.Pool`, a `pg.Client` or a `PoolClient`. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** The SQL expression policies and column defaults use. Wrapped in `(select …)` so it runs once per statement. */
export const CURRENT_TENANT_SQL = '(select tenantscope.current_tenant_id())';

/** Name of the policy `tenantTableSql` creates on every tenant table. */
export const TENANT_POLICY_NAME = 'tenantscope_isolation';

const IDENT = /^[a-z_][a-z0-9_$]{0,62}$/;
const SETTING = /^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$/;

/**
 * Quotes a plain identifier (`customers`) or a schema-qualified one (`crm.customers`). Only
 * lowercase letters, digits, `_` and `$` are accepted, so what you write is what PostgreSQL sees.
 */
export function quoteIdent(name: string, what = 'identifier'): string {
  if (typeof name !== 'string') throw pgError('PG_IDENTIFIER_INVALID', `${what} must be a string`);
  const parts = name.split('.');
  if (parts.length > 2 || parts.some((p) => !IDENT.test(p))) {
    throw pgError('PG_IDENTIFIER_INVALID', `${what} must be a lowercase SQL identifier, optionally schema-qualified`);
  }
  return parts.map((p) => `"${p}"`).join('.');
}

/** Validates the setting name (`namespace.name`). @internal */
export function assertSettingName(setting: string): void {
  if (typeof setting !== 'string' || !SETTING.test(setting)) {
    throw pgError('PG_IDENTIFIER_INVALID', 'tenant setting must look like namespace.name');
  }
}

function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export interface InstallOptions {
  /**
   * Roles the application connects as. They get USAGE on schema `tenantscope` and EXECUTE on its
   * functions (PUBLIC gets them too); they are explicitly refused the key table.
   */
  appRole?: string | string[];
  /** Name of the setting that carries the binding. Default `app.tenant_id`. Must match `scopedPool`'s. */
  setting?: string;
  /**
   * The 64-byte HMAC key (bytes, hex or base64). Default: keep the installed key, or generate one on
   * first install. Passing a different key rotates it: pools using the old key stop binding.
   */
  bindingKey?: Uint8Array | string;
  /** How far (seconds) a client token's timestamp may be from the database clock. Default 300. */
  maxClockSkewSeconds?: number;
}

export interface InstallResult {
  /** The key `scopedPool` needs (`bindingKey` option). Keep it out of the database role's reach. */
  bindingKey: Buffer;
}

/**
 * The DDL of schema `tenantscope`: the key table (no grants), `current_tenant_id()` which policies
 * call, and `bind()` / `bind_session()` which the client calls with an HMAC token. Idempotent.
 */
export function installSql(
  options: { setting?: string; maxClockSkewSeconds?: number; appRole?: string | string[] } = {},
): string {
  const setting = options.setting ?? DEFAULT_TENANT_SETTING;
  assertSettingName(setting);
  const skew = options.maxClockSkewSeconds ?? 300;
  if (!Number.isInteger(skew) || skew < 1 || skew > 86_400) {
    throw pgError('PG_IDENTIFIER_INVALID', 'maxClockSkewSeconds must be an integer from 1 to 86400');
  }
  const roles =
    options.appRole === undefined ? [] : Array.isArray(options.appRole) ? options.appRole : [options.appRole];
  const S = lit(setting);
  // HMAC-SHA-256 with the two padded keys; sha256() is built in since PostgreSQL 11, so no extension.
  const mac = (msg: string) =>
    `pg_catalog.encode(pg_catalog.sha256(k.outer_key || pg_catalog.sha256(k.inner_key || pg_catalog.convert_to(${msg}, 'UTF8'))), 'hex')`;
  const xMsg = `pg_catalog.concat_ws(pg_catalog.chr(31), 'x', ${S}, tenant, pg_catalog.pg_backend_pid()::text, (extract(epoch from pg_catalog.transaction_timestamp()) * 1000000)::bigint::text)`;
  const sMsg = `pg_catalog.concat_ws(pg_catalog.chr(31), 's', ${S}, tenant, pg_catalog.pg_backend_pid()::text)`;
  const refuse = `RAISE EXCEPTION 'tenantscope: invalid tenant binding' USING ERRCODE = '42501'`;
  const checkClient = `
  IF token IS NULL THEN ${refuse}; END IF;
  p := pg_catalog.string_to_array(token, ':');
  IF pg_catalog.cardinality(p) <> 4 OR p[1] <> 'c' OR p[2] !~ '^[a-z0-9][a-z0-9_-]{0,62}$' OR p[3] !~ '^[0-9]{1,12}$' THEN ${refuse}; END IF;
  tenant := p[2];
  SELECT * INTO k FROM tenantscope.binding_key WHERE id;
  IF NOT FOUND THEN ${refuse}; END IF;
  IF ${mac(`pg_catalog.concat_ws(pg_catalog.chr(31), 'c', ${S}, tenant, p[3])`)} <> p[4] THEN ${refuse}; END IF;
  IF abs(extract(epoch from pg_catalog.clock_timestamp()) - p[3]::numeric) > ${skew} THEN ${refuse}; END IF;`;
  // Move fences (see fence.ts). Never waits: a fence being set (its exclusive key held or queued)
  // refuses at once, and so does a fence row. Only bind_exclusive (owner only: the mover) passes.
  const fenced = `RAISE EXCEPTION 'tenantscope: this tenant is fenced at this database (it is being moved); retry' USING ERRCODE = '${FENCE_SQLSTATE}'`;
  const key = fenceKeySql('tenant');
  const fenceRow = `EXISTS (SELECT 1 FROM tenantscope.fence f WHERE f.tenant_id = tenant)`;
  const checkFenceTx = `
  IF pg_catalog.current_setting('transaction_read_only') = 'off' THEN
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(${key}) THEN ${fenced}; END IF;
    IF ${fenceRow} THEN ${fenced}; END IF;
  END IF;`;
  const checkFenceSession = `
  IF NOT pg_catalog.pg_try_advisory_lock_shared(${key}) THEN ${fenced}; END IF;
  IF ${fenceRow} THEN
    PERFORM pg_catalog.pg_advisory_unlock_shared(${key});
    ${fenced};
  END IF;`;
  return `
CREATE SCHEMA IF NOT EXISTS tenantscope;
REVOKE ALL ON SCHEMA tenantscope FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantscope TO PUBLIC;
CREATE TABLE IF NOT EXISTS tenantscope.binding_key (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  inner_key bytea NOT NULL CHECK (length(inner_key) = ${BINDING_KEY_BYTES}),
  outer_key bytea NOT NULL CHECK (length(outer_key) = ${BINDING_KEY_BYTES}),
  updated_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenantscope.binding_key FROM PUBLIC;
${roles.map((r) => `REVOKE ALL ON tenantscope.binding_key FROM ${quoteIdent(r, 'appRole')};`).join('\n')}

-- Tenants that must not write at this database (a move took them elsewhere, or is doing so). No grants:
-- only the owner (the move) reads or writes it; bind() and bind_session() read it as the owner.
CREATE TABLE IF NOT EXISTS tenantscope.fence (
  tenant_id text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  fenced_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenantscope.fence FROM PUBLIC;
${roles.map((r) => `REVOKE ALL ON tenantscope.fence FROM ${quoteIdent(r, 'appRole')};`).join('\n')}

-- The tenant of the current transaction, or NULL. Policies call it as (select tenantscope.current_tenant_id()).
-- It accepts the setting only when it carries a MAC over (tenant, this backend, this transaction's start)
-- made by bind(), or over (tenant, this backend) made by bind_session(). Anything else: NULL, so no rows.
CREATE OR REPLACE FUNCTION tenantscope.current_tenant_id() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v text := pg_catalog.current_setting(${S}, true);
  p text[];
  tenant text;
  k tenantscope.binding_key%ROWTYPE;
BEGIN
  IF v IS NULL OR v = '' THEN RETURN NULL; END IF;
  p := pg_catalog.string_to_array(v, ':');
  IF pg_catalog.cardinality(p) <> 3 THEN RETURN NULL; END IF;
  tenant := p[2];
  SELECT * INTO k FROM tenantscope.binding_key WHERE id;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF p[1] = 'x' THEN
    IF ${mac(xMsg)} = p[3] THEN RETURN tenant; END IF;
  ELSIF p[1] = 's' THEN
    IF ${mac(sMsg)} = p[3] THEN RETURN tenant; END IF;
  END IF;
  RETURN NULL;
END
$fn$;

-- Binds the current transaction to the tenant named in a client token (HMAC by the application's key).
CREATE OR REPLACE FUNCTION tenantscope.bind(token text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p text[];
  tenant text;
  k tenantscope.binding_key%ROWTYPE;
BEGIN${checkClient}${checkFenceTx}
  PERFORM pg_catalog.set_config(${S}, 'x:' || tenant || ':' || ${mac(xMsg)}, true);
  RETURN tenant;
END
$fn$;

-- The mover's bind (EXECUTE for the owner only): waits for the tenant's fence key exclusively (under the
-- caller's lock_timeout), so no other write transaction of the tenant runs here meanwhile, and binds even
-- where the tenant is fenced.
CREATE OR REPLACE FUNCTION tenantscope.bind_exclusive(token text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p text[];
  tenant text;
  k tenantscope.binding_key%ROWTYPE;
BEGIN${checkClient}
  PERFORM pg_catalog.pg_advisory_xact_lock(${key});
  PERFORM pg_catalog.set_config(${S}, 'x:' || tenant || ':' || ${mac(xMsg)}, true);
  RETURN tenant;
END
$fn$;
REVOKE ALL ON FUNCTION tenantscope.bind_exclusive(text) FROM PUBLIC;

-- Binds this connection (session) to a tenant: for tenant-affine connections only.
CREATE OR REPLACE FUNCTION tenantscope.bind_session(token text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p text[];
  tenant text;
  k tenantscope.binding_key%ROWTYPE;
BEGIN${checkClient}${checkFenceSession}
  PERFORM pg_catalog.set_config(${S}, 's:' || tenant || ':' || ${mac(sMsg)}, false);
  RETURN tenant;
END
$fn$;

-- Ids that carry no cross-tenant signal: a UUIDv7 (48-bit millisecond time, 74 random bits) built
-- from gen_random_uuid(), so it works on every supported major (PostgreSQL 18's uuidv7() keeps
-- per-backend state, this keeps none). Use it as a tenant table's id default instead of a
-- sequence: a sequence shared by all tenants tells each one how many rows the others write.
CREATE OR REPLACE FUNCTION tenantscope.uuidv7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $fn$
SELECT pg_catalog.encode(pg_catalog.set_bit(pg_catalog.set_bit(pg_catalog.overlay(
  pg_catalog.uuid_send(pg_catalog.gen_random_uuid()),
  pg_catalog.substr(pg_catalog.int8send(pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint), 3),
  1, 6), 52, 1), 53, 1), 'hex')::uuid
$fn$;
REVOKE ALL ON FUNCTION tenantscope.uuidv7() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenantscope.uuidv7() TO PUBLIC;

REVOKE ALL ON FUNCTION tenantscope.current_tenant_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION tenantscope.bind(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenantscope.bind_session(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenantscope.current_tenant_id() TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenantscope.bind(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenantscope.bind_session(text) TO PUBLIC;
${roles.map((r) => `GRANT USAGE ON SCHEMA tenantscope TO ${quoteIdent(r, 'appRole')};`).join('\n')}
`;
}

/**
 * Installs (or upgrades) schema `tenantscope` through an admin connection, in one transaction.
 * Idempotent; safe to run at every start. Returns the binding key the application must pass to
 * `scopedPool`. The admin role owns the functions (they run as it), so use the schema owner,
 * not the application role.
 */
export async function installTenantScope(admin: Queryable, options: InstallOptions = {}): Promise<InstallResult> {
  const ddl = installSql(options);
  const given = options.bindingKey === undefined ? undefined : normaliseBindingKey(options.bindingKey);
  const client = await checkout(admin);
  try {
    await client.q('BEGIN');
    // Serialises concurrent installers (several replicas starting at once).
    await client.q(`SELECT pg_advisory_xact_lock(hashtext('tenantscope.install'))`);
    await client.q(ddl);
    let key = given;
    if (key === undefined) {
      const r = await client.q<{ inner_key: Buffer }>('SELECT inner_key FROM tenantscope.binding_key WHERE id');
      key = r.rows[0] ? unpad(r.rows[0].inner_key) : generateBindingKey();
    }
    const { inner, outer } = paddedKeys(key);
    await client.q(
      `INSERT INTO tenantscope.binding_key (id, inner_key, outer_key) VALUES (true, $1, $2)
       ON CONFLICT (id) DO UPDATE SET inner_key = EXCLUDED.inner_key, outer_key = EXCLUDED.outer_key, updated_at = now()
       WHERE tenantscope.binding_key.inner_key IS DISTINCT FROM EXCLUDED.inner_key`,
      [inner, outer],
    );
    await client.q('COMMIT');
    return { bindingKey: key };
  } catch (err) {
    await client.q('ROLLBACK').catch(() => undefined);
    throw wrapDriverError(err, 'installTenantScope');
  } finally {
    client.release();
  }
}

/** Reads the installed binding key through an admin connection (the app role cannot). */
export async function readBindingKey(admin: Queryable): Promise<Buffer> {
  try {
    const r = await admin.query<{ inner_key: Buffer }>('SELECT inner_key FROM tenantscope.binding_key WHERE id');
    if (!r.rows[0]) throw pgError('PG_BINDING_REFUSED', 'tenantscope is not installed: no binding key');
    return unpad(r.rows[0].inner_key);
  } catch (err) {
    throw wrapDriverError(err, 'readBindingKey');
  }
}

function unpad(inner: Buffer): Buffer {
  return Buffer.from(inner.map((b) => b ^ 0x36));
}

export interface TenantTableOptions {
  /** The table, optionally schema-qualified (`crm.customers`). It must already exist. */
  table: string;
  /** Column holding the tenant id (type text). Default `tenant_id`. */
  tenantColumn?: string;
  /** Extra columns for the tenant-led index, after the tenant column (e.g. `['id']`). */
  indexColumns?: string[];
  /** Roles to grant SELECT, INSERT, UPDATE, DELETE on the table (the application role). */
  grantTo?: string | string[];
  /**
   * Privileges granted to `grantTo`. Default `['SELECT', 'INSERT', 'UPDATE', 'DELETE']`. SELECT is
   * granted on the table's columns as they are now, not on the table, so the system columns
   * (`xmin`, `ctid`: a global transaction counter and the row's place in the shared heap) stay out
   * of reach. Run it again after adding a column.
   */
  privileges?: ('SELECT' | 'INSERT' | 'UPDATE' | 'DELETE')[];
  /**
   * A uuid column whose default becomes `tenantscope.uuidv7()` (e.g. `'id'`): ids that carry no
   * cross-tenant signal.
   */
  idColumn?: string;
  /**
   * Accept a column that takes its default from a sequence (serial, bigserial, identity). Default
   * false: the SQL raises (SQLSTATE 55000), because one sequence shared by every tenant tells each
   * tenant how many rows the others insert.
   */
  allowSharedSequence?: boolean;
}

/**
 * Idempotent SQL that makes an existing table a tenant table: the tenant column defaults to
 * `tenantscope.current_tenant_id()` and is NOT NULL, RLS is enabled and forced, one policy
 * (`tenantscope_isolation`, FOR ALL) checks `tenant = (select tenantscope.current_tenant_id())` in
 * USING and WITH CHECK, and an index is led by the tenant column. It refuses a table that takes
 * ids from a sequence (unless `allowSharedSequence`), sets `idColumn`'s default to
 * `tenantscope.uuidv7()`, and grants SELECT column by column. Run it as the table owner.
 */
export function tenantTableSql(options: TenantTableOptions): string {
  const table = quoteIdent(options.table, 'table');
  const col = quoteIdent(options.tenantColumn ?? 'tenant_id', 'tenantColumn');
  const extra = (options.indexColumns ?? []).map((c) => quoteIdent(c, 'indexColumns'));
  const bare = options.table.replace('.', '_');
  const idxName = quoteIdent(`${bare}_${options.tenantColumn ?? 'tenant_id'}_tsidx`.slice(0, 63), 'index name');
  const grants =
    options.grantTo === undefined ? [] : Array.isArray(options.grantTo) ? options.grantTo : [options.grantTo];
  const privs = options.privileges ?? ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
  for (const p of privs) {
    if (!['SELECT', 'INSERT', 'UPDATE', 'DELETE'].includes(p))
      throw pgError('PG_IDENTIFIER_INVALID', 'unknown privilege');
  }
  const cond = `${col} = ${CURRENT_TENANT_SQL}`;
  const rel = lit(table);
  const id = options.idColumn === undefined ? undefined : quoteIdent(options.idColumn, 'idColumn');
  const sequences = options.allowSharedSequence
    ? []
    : [
        `DO $ts$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = ${rel}::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND (a.attidentity <> '' OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) ~ '\\mnextval\\(')) THEN
    RAISE EXCEPTION 'tenantscope: % takes ids from a sequence shared by every tenant (use uuid DEFAULT tenantscope.uuidv7())', ${rel}
      USING ERRCODE = '55000';
  END IF;
END $ts$;`,
      ];
  const tablePrivs = privs.filter((p) => p !== 'SELECT');
  const grantSql = (role: string) => {
    const r = quoteIdent(role, 'grantTo');
    const out = [`REVOKE SELECT ON ${table} FROM ${r};`];
    if (tablePrivs.length > 0) out.push(`GRANT ${tablePrivs.join(', ')} ON ${table} TO ${r};`);
    if (privs.includes('SELECT')) {
      out.push(`DO $ts$ BEGIN
  EXECUTE (SELECT pg_catalog.format('GRANT SELECT (%s) ON %s TO %s', pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum), ${rel}, ${lit(r)})
           FROM pg_catalog.pg_attribute a WHERE a.attrelid = ${rel}::regclass AND a.attnum > 0 AND NOT a.attisdropped);
END $ts$;`);
    }
    return out;
  };
  return [
    ...sequences,
    ...(id ? [`ALTER TABLE ${table} ALTER COLUMN ${id} SET DEFAULT tenantscope.uuidv7();`] : []),
    `ALTER TABLE ${table} ALTER COLUMN ${col} SET DEFAULT tenantscope.current_tenant_id();`,
    `ALTER TABLE ${table} ALTER COLUMN ${col} SET NOT NULL;`,
    `ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;`,
    `ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;`,
    `DROP POLICY IF EXISTS ${TENANT_POLICY_NAME} ON ${table};`,
    `CREATE POLICY ${TENANT_POLICY_NAME} ON ${table} AS PERMISSIVE FOR ALL TO PUBLIC USING (${cond}) WITH CHECK (${cond});`,
    `CREATE INDEX IF NOT EXISTS ${idxName} ON ${table} (${[col, ...extra].join(', ')});`,
    ...grants.flatMap(grantSql),
  ].join('\n');
}

interface Checked {
  q<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
  release(): void;
}

/** One connection for a multi-statement transaction, from a Pool or a plain Client. */
async function checkout(q: Queryable): Promise<Checked> {
  const maybePool = q as Queryable & {
    connect?: () => Promise<Queryable & { release(err?: unknown): void }>;
    totalCount?: number;
  };
  if (typeof maybePool.connect === 'function' && typeof maybePool.totalCount === 'number') {
    const c = await maybePool.connect();
    return { q: (t, v) => c.query(t, v), release: () => c.release() };
  }
  return { q: (t, v) => q.query(t, v), release: () => {} };
}
