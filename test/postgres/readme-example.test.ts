/**
 * The @tenantscope/postgres README's usage example, run as written against a scratch database:
 * only its `declare const` lines are bound (URLs, a verified tenant, the agent's SQL) and the role
 * name 'crm_app' is replaced by the scratch app role. The SQL (table, tenantTableSql, INSERT,
 * UPDATE, doctor) is the README's. Before uuid ids, its INSERT failed with 42501 (the sequence
 * was not granted).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';

declare module 'vitest' {
  interface ProvidedContext {
    databaseUrl: string;
  }
}

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(join(here, '../../packages/postgres/README.md'), 'utf8');
const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
const suffix = randomBytes(4).toString('hex');
const DB = `ts_readme_${suffix}`;
const OWNER = `ts_readme_owner_${suffix}`;
const APP = `ts_readme_app_${suffix}`;
const file = join(here, `.readme-run-${suffix}.ts`);
let superUrl: string;

const urlFor = (role: string | null) => {
  const u = new URL(superUrl);
  if (role) {
    u.username = role;
    u.password = 'scratch-pw';
  }
  u.pathname = `/${DB}`;
  return u.toString();
};

beforeAll(async () => {
  superUrl = inject('databaseUrl');
  const c = new pg.Client({ connectionString: superUrl });
  await c.connect();
  await c.query(`CREATE ROLE ${OWNER} LOGIN PASSWORD 'scratch-pw'; CREATE ROLE ${APP} LOGIN PASSWORD 'scratch-pw'`);
  await c.query(`CREATE DATABASE ${DB} OWNER ${OWNER}`);
  await c.query(`REVOKE ALL ON DATABASE ${DB} FROM PUBLIC; GRANT CONNECT ON DATABASE ${DB} TO ${APP}`);
  await c.end();
  const d = new pg.Client({ connectionString: urlFor(null) });
  await d.connect();
  await d.query(`ALTER SCHEMA public OWNER TO ${OWNER}; REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
  await d.end();
});
afterAll(async () => {
  rmSync(file, { force: true });
  const c = new pg.Client({ connectionString: superUrl });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.query(`DROP ROLE IF EXISTS ${APP}`);
  await c.query(`DROP ROLE IF EXISTS ${OWNER}`);
  await c.end();
});

it('the README usage example runs as written (inserts, updates, doctor passes; refused behind an undeclared transaction pooler)', async () => {
  expect(block).toContain('CREATE TABLE IF NOT EXISTS customers');
  const bound = block
    .replace(/^declare const (\w+): [^;]+;.*$/gm, (_m, name) => `const ${name} = (globalThis as any).__readme.${name};`)
    .replaceAll("'crm_app'", `'${APP}'`);
  expect(bound).not.toMatch(/^declare /m);
  writeFileSync(file, `${bound}\nexport { admin, db, acme };\n`);
  const issuer = await createTestIssuer();
  (globalThis as { __readme?: unknown }).__readme = {
    SUPERUSER_URL: urlFor(null),
    OWNER_URL: urlFor(OWNER),
    APP_URL: urlFor(APP),
    tenant: await issuer.tenant('acme'),
    agentSql: 'SELECT id, name FROM customers',
  };
  if (TEST_POOLER === 'transaction') {
    // The example declares no pooler: pointed at PgBouncer in transaction mode it must refuse to
    // start (its doctor() detects the pooler), not run with bindings that could outlive a transaction.
    await expect(import(pathToFileURL(file).href)).rejects.toMatchObject({
      code: 'PG_DOCTOR_FAILED',
      message: expect.stringContaining('POOLER_MISMATCH'),
    });
    return;
  }
  const mod = (await import(pathToFileURL(file).href)) as {
    admin: pg.Pool;
    db: { end(): Promise<void> };
    acme: { query<R>(t: string): Promise<{ rows: R[] }> };
  };
  try {
    const r = await mod.acme.query<{ name: string; id: string }>('SELECT id, name FROM customers');
    expect(r.rows.map((x) => x.name)).toEqual(['Ada L.']);
    expect(r.rows[0]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  } finally {
    await mod.db.end();
    await mod.admin.end();
  }
});
