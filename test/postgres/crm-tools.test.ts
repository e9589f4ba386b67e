/**
 * The example server's Postgres tools over real MCP: cross-tenant select, update, delete and
 * insert through `run_sql` (agent-written SQL) and the parameterized tools. 0 foreign rows, or an
 * error with nothing changed.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, resultText } from '../../examples/crm-server/src/client.ts';
import { configFromEnv, type RunningCrmServer, startCrmServer } from '../../examples/crm-server/src/index.ts';

declare module 'vitest' {
  interface ProvidedContext {
    databaseUrl: string;
  }
}

let server: RunningCrmServer;
const clients: Record<string, Client> = {};

beforeAll(async () => {
  // The example's sharedPostgres() reads DATABASE_URL: use the suite's server, not a second one.
  process.env.DATABASE_URL = inject('databaseUrl');
  // Exact row counts below: a private database, not the one replicas given DATABASE_URL share.
  process.env.TENANTSCOPE_CRM_PRIVATE_DB = '1';
  const config = await configFromEnv({ ...process.env, PORT: '0' });
  server = await startCrmServer(config, { log: () => {} });
  const issuer = server.devIssuer;
  if (!issuer) throw new Error('dev mode expected');
  for (const t of ['acme', 'globex', 'initech']) {
    clients[t] = await connectClient(server.url, await issuer.mint({ tenant: t, subject: `test-${t}` }));
  }
}, 120_000);
afterAll(async () => {
  for (const c of Object.values(clients)) await c.close().catch(() => undefined);
  await server?.close();
});

async function call(tenant: string, tool: string, args: Record<string, unknown> = {}) {
  const r = await (clients[tenant] as Client).callTool({ name: tool, arguments: args });
  return { text: resultText(r), isError: r.isError === true };
}
const customers = async (tenant: string) =>
  (JSON.parse((await call(tenant, 'query_customers', {})).text).customers as { id: string; name: string }[])
    .map((c) => c.name)
    .sort();

describe('example Postgres tools', () => {
  it('each tenant lists only its own seeded customers', async () => {
    expect(await customers('acme')).toEqual(['Ada Lovelace', 'Charles Babbage', 'Grace Hopper']);
    expect(await customers('globex')).toEqual(['Frank Grimes', 'Hank Scorpio']);
    expect((await customers('initech')).length).toBe(4);
  });

  it('run_sql: acme selects with globex id and gets 0 rows', async () => {
    const r = await call('acme', 'run_sql', { sql: "SELECT * FROM customers WHERE tenant_id = 'globex'" });
    expect(r.isError).toBe(false);
    expect(JSON.parse(r.text).rows).toEqual([]);
    const all = await call('acme', 'run_sql', { sql: 'SELECT DISTINCT tenant_id FROM customers' });
    expect(JSON.parse(all.text).rows).toEqual([{ tenant_id: 'acme' }]);
  });

  it('run_sql: update, delete and insert with globex id are refused and change nothing', async () => {
    const before = await customers('globex');
    for (const sql of [
      "UPDATE customers SET name = 'pwned' WHERE tenant_id = 'globex'",
      "DELETE FROM customers WHERE tenant_id = 'globex'",
      "INSERT INTO customers (tenant_id, name) VALUES ('globex', 'planted')",
      'WITH d AS (DELETE FROM customers RETURNING 1) SELECT count(*) FROM d',
    ]) {
      const r = await call('acme', 'run_sql', { sql });
      expect(r.isError, sql).toBe(true);
      expect(r.text).toMatch(/PG_QUERY_FAILED/);
      expect(r.text).not.toMatch(/Hank|Frank/);
    }
    expect(await customers('globex')).toEqual(before);
    expect((await customers('acme')).length).toBe(3);
  });

  it('run_sql: binding forgeries show 0 globex rows', async () => {
    for (const sql of [
      "SELECT set_config('app.tenant_id', 'globex', true) AS s, (SELECT count(*)::int FROM customers WHERE tenant_id = 'globex') AS n",
      "SELECT set_config('app.tenant_id', replace(current_setting('app.tenant_id'), ':acme:', ':globex:'), true) AS s, (SELECT count(*)::int FROM customers WHERE tenant_id = 'globex') AS n",
      "SELECT tenantscope.bind('c:globex:' || extract(epoch from now())::bigint || ':' || repeat('ab', 32)) AS n",
    ]) {
      const r = await call('acme', 'run_sql', { sql });
      if (!r.isError) expect(JSON.parse(r.text).rows[0].n).toBe(0);
      expect(r.text).not.toMatch(/Hank|Frank/);
    }
  });

  it('create_note: the tenant comes from the binding; another tenant id in the row is refused', async () => {
    const ok = await call('acme', 'create_note', { body: 'renewal call' });
    expect(ok.isError).toBe(false);
    const notes = await call('acme', 'run_sql', { sql: 'SELECT tenant_id, body FROM notes' });
    expect(JSON.parse(notes.text).rows).toEqual([{ tenant_id: 'acme', body: 'renewal call' }]);
    const gNotes = await call('initech', 'query_customers', { name_contains: 'renewal' });
    expect(JSON.parse(gNotes.text).customers).toEqual([]);
    // a globex customer id is "not found" for acme
    const ids = await call('globex', 'query_customers', {});
    const globexId = String(JSON.parse(ids.text).customers[0].id);
    const foreign = await call('acme', 'create_note', { body: 'spy', customer_id: globexId });
    expect(foreign.isError).toBe(true);
    expect(foreign.text).toMatch(/CUSTOMER_NOT_FOUND/);
    // a tenant_id argument is refused by core before the handler
    const override = await (clients.acme as Client)
      .callTool({ name: 'create_note', arguments: { body: 'x', tenant_id: 'globex' } })
      .then((r) => resultText(r))
      .catch((e: Error) => e.message);
    expect(override).toMatch(/TENANT_OVERRIDE/);
  });

  it('run_sql: statistics, catalog counts, sequences and EXPLAIN tell acme nothing about globex', async () => {
    for (const sql of [
      "SELECT n_live_tup, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'customers'",
      "SELECT reltuples, relpages FROM pg_class WHERE relname = 'customers'",
      "SELECT pg_stat_get_live_tuples('customers'::regclass)",
      'SELECT pg_snapshot_xmax(pg_current_snapshot())',
      'SELECT xmin, ctid FROM notes',
      "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'",
      "EXPLAIN SELECT * FROM customers WHERE name = 'Hank Scorpio'",
      'SELECT query FROM pg_stat_activity',
    ]) {
      const r = await call('acme', 'run_sql', { sql });
      if (r.isError) expect(r.text, sql).toMatch(/PG_QUERY_FAILED|PG_STATEMENT_REFUSED/);
      else expect(JSON.parse(r.text).rows, sql).toEqual([]); // pg_stats hides RLS tables
    }
  });

  it("create_note: acme's consecutive note ids do not reveal globex's inserts (uuidv7, no shared sequence)", async () => {
    const noteId = async () => JSON.parse((await call('acme', 'create_note', { body: 'n' })).text).note_id as string;
    const a = await noteId();
    for (let i = 0; i < 5; i++) expect((await call('globex', 'create_note', { body: 'g' })).isError).toBe(false);
    const b = await noteId();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(b > a).toBe(true);
    // the shared bigserial this replaces gave b = a + 6 here; now only the clock is shared
    expect(b.replace(/-/g, '').slice(13)).not.toBe(a.replace(/-/g, '').slice(13));
  });

  it('run_sql: a 40 MB result is refused with PG_RESULT_TOO_LARGE, and the server answers the next call', async () => {
    const r = await call('acme', 'run_sql', { sql: "SELECT repeat('x', 1000000) FROM generate_series(1, 40)" });
    expect(r.isError).toBe(true);
    expect(r.text).toMatch(/PG_RESULT_TOO_LARGE/);
    expect(r.text.length).toBeLessThan(2000);
    expect(await customers('acme')).toHaveLength(3);
  });
});
