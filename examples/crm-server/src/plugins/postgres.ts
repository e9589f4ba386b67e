/**
 * CRM records in PostgreSQL through `@tenantscope/postgres`, plugged in as `ctx.db`:
 * `query_customers` (parameterized), `create_note` (insert; tenant_id comes from the column
 * default) and `run_sql` (agent-written, read-only SQL through `queryUntrusted`). Rows are
 * separated by RLS policies that trust only an HMAC-bound tenant setting, so even SQL the agent
 * writes stays inside its tenant.
 *
 * PostgreSQL: `sharedPostgres()` (DATABASE_URL, else testcontainers, else embedded). The plugin
 * creates its own database and least-privileged roles, and drops them on stop.
 */
import { defineTool, ToolError } from '@tenantscope/core';
import {
  installSideChannelGuards,
  installTenantScope,
  pg,
  type ScopedPool,
  scopedPool,
  type TenantDb,
  tenantTableSql,
} from '@tenantscope/postgres';
import { z } from 'zod';
import type { CrmPlugin, DemoContext } from '../plugin.ts';
import {
  crmDatabaseNames,
  directPostgresUrl,
  poolerFromEnv,
  provisionCrmDatabase,
  sharedPostgres,
} from '../services.ts';

/** Distinct customers per example tenant. */
export const SEED_CUSTOMERS: Record<string, { name: string; email: string; plan: string }[]> = {
  acme: [
    { name: 'Ada Lovelace', email: 'ada@acme.example', plan: 'enterprise' },
    { name: 'Charles Babbage', email: 'charles@acme.example', plan: 'pro' },
    { name: 'Grace Hopper', email: 'grace@acme.example', plan: 'pro' },
  ],
  globex: [
    { name: 'Hank Scorpio', email: 'hank@globex.example', plan: 'enterprise' },
    { name: 'Frank Grimes', email: 'frank@globex.example', plan: 'basic' },
  ],
  initech: [
    { name: 'Peter Gibbons', email: 'peter@initech.example', plan: 'basic' },
    { name: 'Milton Waddams', email: 'milton@initech.example', plan: 'basic' },
    { name: 'Bill Lumbergh', email: 'bill@initech.example', plan: 'pro' },
    { name: 'Samir Nagheenanajar', email: 'samir@initech.example', plan: 'basic' },
  ],
};

const MAX_ROWS = 100;
const tool = defineTool<{ db: TenantDb }>();

export const postgresTools = [
  tool({
    name: 'query_customers',
    description: "Lists the calling tenant's customers, optionally filtered by a name fragment.",
    input: {
      name_contains: z.string().max(200).optional().describe('Case-insensitive fragment of the name.'),
      limit: z.number().int().min(1).max(MAX_ROWS).optional(),
    },
    annotations: { readOnlyHint: true },
    handler: async ({ name_contains, limit }, ctx) => {
      const r = await ctx.db.query<{ id: string; name: string; email: string; plan: string }>(
        `SELECT id, name, email, plan FROM customers
         WHERE ($1::text IS NULL OR name ILIKE '%' || replace(replace(replace($1, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')
         ORDER BY id LIMIT $2`,
        [name_contains ?? null, limit ?? 50],
      );
      return { customers: r.rows };
    },
  }),
  tool({
    name: 'create_note',
    description: 'Adds a note, optionally about one of the calling tenant’s customers.',
    input: {
      body: z.string().min(1).max(10_000),
      customer_id: z.string().uuid().optional().describe('A customer id from query_customers.'),
    },
    handler: async ({ body, customer_id }, ctx) => {
      if (customer_id !== undefined) {
        // A customer id from another tenant is simply not found (RLS), never revealed.
        const c = await ctx.db.query('SELECT 1 FROM customers WHERE id = $1', [customer_id]);
        if (c.rowCount === 0) throw new ToolError('no such customer', { code: 'CUSTOMER_NOT_FOUND' });
      }
      const r = await ctx.db.query<{ id: string; created_at: Date }>(
        'INSERT INTO notes (customer_id, body) VALUES ($1, $2) RETURNING id, created_at',
        [customer_id ?? null, body],
      );
      return { note_id: r.rows[0]?.id, created_at: r.rows[0]?.created_at };
    },
  }),
  tool({
    name: 'run_sql',
    description:
      'Runs one read-only SQL query (SELECT/WITH/VALUES/TABLE) over the CRM tables (customers, notes) and returns ' +
      "up to 100 rows and at most 1 MiB. You only ever see the calling tenant's rows; statistics and EXPLAIN are not available.",
    input: { sql: z.string().min(1).max(4000) },
    annotations: { readOnlyHint: true },
    handler: async ({ sql }, ctx) => {
      const r = await ctx.db.queryUntrusted(sql, [], { readOnly: true, timeoutMs: 2000 });
      return { rows: r.rows.slice(0, MAX_ROWS), row_count: r.rowCount, truncated: r.rows.length > MAX_ROWS };
    },
  }),
];

async function demo({ say, check, call }: DemoContext, where: string): Promise<void> {
  say(`\nPostgres (${where}): RLS bound to an HMAC-checked tenant setting`);
  const names = (text: string) => {
    try {
      return (JSON.parse(text).customers as { name: string }[]).map((c) => c.name);
    } catch {
      return [];
    }
  };
  const acme = names((await call('acme', 'query_customers', {})).text);
  const globex = names((await call('globex', 'query_customers', {})).text);
  const initech = names((await call('initech', 'query_customers', {})).text);
  say(`  acme query_customers    -> ${acme.join(', ')}`);
  say(`  globex query_customers  -> ${globex.join(', ')}`);
  say(`  initech query_customers -> ${initech.join(', ')}`);
  const expect = (t: string) => (SEED_CUSTOMERS[t] ?? []).map((c) => c.name).sort();
  check(
    'each tenant lists exactly its own customers',
    [
      [acme, 'acme'],
      [globex, 'globex'],
      [initech, 'initech'],
    ].every(([got, t]) => JSON.stringify([...(got as string[])].sort()) === JSON.stringify(expect(t as string))),
  );
  const hank = await call('acme', 'query_customers', { name_contains: 'Scorpio' });
  check("acme searching for globex's customer finds nothing", names(hank.text).length === 0);

  say('  acme tries to reach globex rows through run_sql (agent-written SQL):');
  const attempts = [
    'SELECT name FROM customers',
    "SELECT name FROM customers WHERE tenant_id = 'globex'",
    "SELECT set_config('app.tenant_id', 'globex', true) AS s, (SELECT count(*) FROM customers WHERE tenant_id = 'globex') AS n",
    "SELECT set_config('app.tenant_id', replace(current_setting('app.tenant_id'), ':acme:', ':globex:'), true) AS s, (SELECT string_agg(name, ',') FROM customers) AS n",
    "SET app.tenant_id = 'globex'; SELECT name FROM customers",
    'RESET ALL; SELECT name FROM customers',
    'SET ROLE postgres',
    "COMMIT; BEGIN; SELECT set_config('app.tenant_id', 'globex', true); SELECT name FROM customers",
    "SELECT encode(inner_key, 'hex') FROM tenantscope.binding_key",
    "INSERT INTO customers (tenant_id, name) VALUES ('globex', 'planted by acme')",
    "SELECT n_live_tup AS n FROM pg_stat_user_tables WHERE relname = 'customers'",
    "SELECT reltuples::int AS n FROM pg_class WHERE relname = 'customers'",
    "EXPLAIN SELECT * FROM customers WHERE name = 'Hank Scorpio'",
  ];
  const globexNames = (SEED_CUSTOMERS.globex ?? []).map((c) => c.name);
  let leaked = 0;
  for (const sql of attempts) {
    const r = await call('acme', 'run_sql', { sql });
    const leak = globexNames.some((n) => r.text.includes(n)) || /"n"\s*:\s*"?[1-9]/.test(r.text);
    if (leak) leaked++;
    // SQLSTATE only: the demo's output must not contain the word the e2e test greps for.
    const sqlstate = /SQLSTATE ([0-9A-Z]{5})/.exec(r.text)?.[1];
    const shown = r.isError
      ? `refused${sqlstate ? ` (SQLSTATE ${sqlstate})` : ''}`
      : `${(JSON.parse(r.text).rows as unknown[]).length} rows, none of globex's`;
    say(`    ${sql.length > 90 ? `${sql.slice(0, 87)}...` : sql.padEnd(90)} -> ${leak ? 'LEAK!' : shown}`);
  }
  check(`acme reaches no globex row through run_sql (${attempts.length} attempts)`, leaked === 0);
  const g = names((await call('globex', 'query_customers', {})).text);
  check(
    "globex's customers are unchanged and nothing was planted",
    JSON.stringify([...g].sort()) === JSON.stringify(expect('globex')),
  );

  const firstId = async (tenant: 'acme' | 'globex') =>
    (JSON.parse((await call(tenant, 'query_customers', { limit: 1 })).text).customers as { id: string }[])[0]?.id;
  const note = await call('acme', 'create_note', {
    body: 'Call Ada about renewal',
    customer_id: await firstId('acme'),
  });
  say(`  acme create_note -> ${note.text}`);
  const foreign = await call('acme', 'create_note', { body: 'spy note', customer_id: await firstId('globex') });
  check(
    "acme cannot attach a note to globex's customer (it does not exist for acme)",
    foreign.isError && foreign.text.includes('CUSTOMER_NOT_FOUND'),
  );
  const gr = await call('globex', 'run_sql', { sql: 'SELECT 1' });
  check('globex (no run_sql in its plan) cannot call run_sql', gr.isError);
  const ir = await call('initech', 'create_note', { body: 'x' });
  check('initech (read-only plan) cannot call create_note', ir.isError);
}

export const plugin: CrmPlugin = {
  name: 'postgres',
  order: 20,
  async start(env) {
    const server = await sharedPostgres();
    // DATABASE_URL: one database shared by every replica; dev mode: a private random one.
    const names = crmDatabaseNames(server.url, env);
    const { dbName, ownerRole, appRole, password } = names;
    const pooler = poolerFromEnv(env);
    // Directly (DATABASE_DIRECT_URL behind a pooler): set-up holds a session advisory lock.
    const su = new pg.Client({ connectionString: directPostgresUrl(server.url, env) });
    await su.connect();
    const urlFor = (role: string | null) => {
      const u = new URL(server.url);
      if (role) {
        u.username = role;
        u.password = password;
      }
      u.pathname = `/${dbName}`;
      return u.toString();
    };
    let scoped: ScopedPool | undefined;
    let owner: InstanceType<typeof pg.Pool> | undefined;
    const drop = async () => {
      await scoped?.end().catch(() => undefined);
      await owner?.end().catch(() => undefined);
      if (names.shared) return; // a shared database outlives every replica
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
      await c.query(`DROP ROLE IF EXISTS ${appRole}`).catch(() => undefined);
      await c.query(`DROP ROLE IF EXISTS ${ownerRole}`).catch(() => undefined);
      await c.end();
    };
    try {
      await provisionCrmDatabase(su, names, async (role) => {
        const u = new URL(directPostgresUrl(server.url, env));
        u.username = role;
        u.password = password;
        const c = new pg.Client({ connectionString: u.toString() });
        try {
          await c.connect();
          return true;
        } catch (err) {
          // Only a refused password means it must be set again (not e.g. a missing CONNECT grant).
          return !['28P01', '28000'].includes((err as { code?: string }).code ?? '');
        } finally {
          await c.end().catch(() => undefined);
        }
      });
      const inDb = new pg.Client({ connectionString: urlFor(null) });
      await inDb.connect();
      await inDb.query(`ALTER SCHEMA public OWNER TO ${ownerRole}; REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      owner = new pg.Pool({ connectionString: urlFor(ownerRole), max: 2 });
      const { bindingKey } = await installTenantScope(owner, { appRole });
      // uuid ids (tenantscope.uuidv7()), not a bigserial: one sequence shared by every tenant would
      // let each tenant count the others' inserts.
      await owner.query(`
        CREATE TABLE IF NOT EXISTS customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL, email text, plan text);
        CREATE TABLE IF NOT EXISTS notes (id uuid PRIMARY KEY, tenant_id text NOT NULL, customer_id uuid REFERENCES customers (id), body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());`);
      await owner.query(tenantTableSql({ table: 'customers', idColumn: 'id', indexColumns: ['id'], grantTo: appRole }));
      await owner.query(
        tenantTableSql({
          table: 'notes',
          idColumn: 'id',
          indexColumns: ['id'],
          grantTo: appRole,
          privileges: ['SELECT', 'INSERT'],
        }),
      );
      // As the superuser: statistics, sizes and activity counters out of PUBLIC's reach in this database.
      await installSideChannelGuards(inDb);
      // Seed as the superuser (RLS is forced even for the owner, so the owner could not insert unbound).
      // A shared database is seeded once, by the first replica.
      const seeded = ((await inDb.query('SELECT 1 FROM customers LIMIT 1')).rowCount ?? 0) > 0;
      for (const [tenant, rows] of seeded ? [] : Object.entries(SEED_CUSTOMERS)) {
        for (const c of rows) {
          await inDb.query('INSERT INTO customers (tenant_id, name, email, plan) VALUES ($1, $2, $3, $4)', [
            tenant,
            c.name,
            c.email,
            c.plan,
          ]);
        }
      }
      await inDb.end();
      await su.query(`SELECT pg_advisory_unlock_all()`); // set-up done: the next replica may go
      scoped = scopedPool(
        { connectionString: urlFor(appRole), max: 5 },
        { bindingKey, multiplex: 2, hot: { maxTenants: 4 }, pooler },
      );
      await scoped.doctor();
    } catch (err) {
      await su.end().catch(() => undefined);
      await drop().catch(() => undefined);
      await server.release();
      throw err;
    }
    await su.end();
    const db = scoped;
    return {
      providers: { db: db.provider() },
      tools: postgresTools,
      demo: (ctx) => demo(ctx, server.describe),
      async stop() {
        await drop().catch(() => undefined);
        await server.release();
      },
    };
  },
};
