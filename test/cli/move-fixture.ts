/**
 * The set-up the `tenant move` suites share: a scratch database with the tenant tables and the
 * placement registry, a shared bucket, tenant databases and buckets made on demand, raw readers of
 * a tenant's rows and objects (what the assertions compare), and the CLI's config file.
 */
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { databaseUrl, installTenantScope, pg, placementRegistry, tenantTableSql } from '@tenantscope/postgres';
import { createTestBucket, deleteTestBucket, s3Client } from '@tenantscope/testkit';
import { inject } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '../../packages/postgres/src/testing/scratch.ts';
import { auditEvents, writeJson } from './helpers.ts';

export const MOVE_SCHEMA = 'tenantscope_placement';
export const MOVE_TABLES = ['customers', 'invoices'] as const;

const DDL = `
  CREATE TABLE customers (id uuid PRIMARY KEY, tenant_id text NOT NULL, subject_id text NOT NULL, name text, email text);
  CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id text NOT NULL, customer_id uuid REFERENCES customers (id),
                         amount numeric(30, 10) NOT NULL, meta jsonb);
`;

export interface MoveFixture {
  dir: string;
  auditDir: string;
  db: ScratchDatabase;
  /** Superuser on the shared database. */
  su: pg.Client;
  bindingKey: Buffer;
  s3: S3Client;
  /** The shared bucket. */
  shared: string;
  /** The CLI config file (a dsar section over the shared database and bucket). */
  config: string;
  /** A tenant's own database on the same server, set up the way the app's migrations would (same key, same tables). */
  provision(name: string): Promise<string>;
  /** A bucket of the tenant's own (deleted at close). */
  bucket(label: string): Promise<string>;
  /** Every row of a tenant in one database, read by the superuser: `table:id` -> row as JSON text. */
  rowsOf(database: string, tenant: string): Promise<Map<string, string>>;
  /** Every object of a tenant under its prefix in a bucket (raw client): key -> sha256 of the body. */
  objectsOf(bucket: string, tenant: string): Promise<Map<string, string>>;
  /** 30 customers and 30 invoices per tenant in the shared database (awkward numerics and JSON included). */
  seedRows(tenants: string[], perTenant?: number): Promise<void>;
  /** `count` objects per tenant under its prefix in the shared bucket (non-ASCII keys included). */
  seedObjects(tenants: string[], count?: number): Promise<void>;
  /** `tenant move` argv: tenant, store, tier, target (or undefined), then more flags; always with the config. */
  mv(tenant: string, store: string, to: string, target?: string, ...more: string[]): string[];
  /** The `placement_*` events in a tenant's audit stream. */
  moveEvents(tenant: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/**
 * Builds the fixture. `tenants` go into `dsar.tenants`; `extraDsar` is merged into the config's
 * dsar section (e.g. a qdrant store). Nothing is seeded: call seedRows / seedObjects.
 */
export async function createMoveFixture(
  label: string,
  tenants: string[],
  extraDsar: (f: Pick<MoveFixture, 'dir'>) => Record<string, unknown> = () => ({}),
): Promise<MoveFixture> {
  const dir = await mkdtemp(join(tmpdir(), `ts${label}-`));
  const auditDir = join(dir, 'audit');
  const db = await createScratchDatabase(inject('databaseUrl'), label);
  const su = new pg.Client({ connectionString: db.superUrl });
  await su.connect();
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  const { bindingKey } = await installTenantScope(owner, { appRole: db.appRole });
  await owner.query(DDL);
  for (const t of MOVE_TABLES) await owner.query(tenantTableSql({ table: t, idColumn: 'id', grantTo: db.appRole }));
  // The registry: created by the operator (the CLI does it too), read by the app role.
  await placementRegistry({ pool: owner, schema: MOVE_SCHEMA }).migrate();
  await owner.query(
    `GRANT USAGE ON SCHEMA ${MOVE_SCHEMA} TO ${db.appRole}; GRANT SELECT ON ${MOVE_SCHEMA}.placements TO ${db.appRole}`,
  );
  await owner.end();
  const conn = inject('s3');
  const s3 = s3Client(conn);
  const shared = await createTestBucket(s3, `${label}-shared`);
  const buckets = [shared];
  const databases: string[] = [];
  process.env.MOVE_TEST_S3_KEY = conn.accessKeyId;
  process.env.MOVE_TEST_S3_SECRET = conn.secretAccessKey;
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const config = await writeJson(join(dir, 'tenantscope.config.json'), {
    dsar: {
      tenants,
      postgres: { url: db.ownerUrl, tables: [{ name: 'invoices' }, { name: 'customers' }] },
      s3: {
        endpoint: conn.endpoint,
        region: conn.region,
        bucket: shared,
        accessKeyIdEnv: 'MOVE_TEST_S3_KEY',
        secretAccessKeyEnv: 'MOVE_TEST_S3_SECRET',
      },
      audit: { jsonlDir: 'audit' },
      signingKey: 'signing.pem',
      actor: 'ops@example.test',
      ...extraDsar({ dir }),
    },
  });

  return {
    dir,
    auditDir,
    db,
    su,
    bindingKey,
    s3,
    shared,
    config,
    async provision(name) {
      await su.query(`CREATE DATABASE ${name} OWNER ${db.ownerRole}`);
      databases.push(name);
      await su.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC; GRANT CONNECT ON DATABASE ${name} TO ${db.appRole}`);
      const suThere = new pg.Client({ connectionString: databaseUrl(db.superUrl, name) });
      await suThere.connect();
      await suThere.query(`ALTER SCHEMA public OWNER TO ${db.ownerRole}`);
      await suThere.end();
      const ownerThere = new pg.Pool({ connectionString: databaseUrl(db.ownerUrl, name), max: 1 });
      await installTenantScope(ownerThere, { appRole: db.appRole, bindingKey });
      await ownerThere.query(DDL);
      for (const t of MOVE_TABLES)
        await ownerThere.query(tenantTableSql({ table: t, idColumn: 'id', grantTo: db.appRole }));
      await ownerThere.end();
      return name;
    },
    async bucket(l) {
      const b = await createTestBucket(s3, l);
      buckets.push(b);
      return b;
    },
    async rowsOf(database, tenant) {
      const c = new pg.Client({ connectionString: databaseUrl(db.superUrl, database) });
      await c.connect();
      try {
        const out = new Map<string, string>();
        for (const t of MOVE_TABLES) {
          const r = await c.query<{ id: string; j: string }>(
            `SELECT id, to_jsonb(x)::text AS j FROM ${t} x WHERE tenant_id = $1`,
            [tenant],
          );
          for (const row of r.rows) out.set(`${t}:${row.id}`, row.j);
        }
        return out;
      } finally {
        await c.end();
      }
    },
    async objectsOf(bucket, tenant) {
      const out = new Map<string, string>();
      let token: string | undefined;
      do {
        const r = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: `tenants/${tenant}/`, ContinuationToken: token }),
        );
        for (const o of r.Contents ?? []) {
          const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
          const body = await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
          out.set(o.Key as string, createHash('sha256').update(body).digest('hex'));
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async seedRows(ts, perTenant = 30) {
      for (const t of ts) {
        for (let i = 0; i < perTenant; i++) {
          const c = randomUUID();
          await su.query('INSERT INTO customers VALUES ($1, $2, $3, $4, $5)', [
            c,
            t,
            `s${i % 5}`,
            `${t} name ${i}`,
            `${t}${i}@example.test`,
          ]);
          await su.query('INSERT INTO invoices VALUES ($1, $2, $3, $4, $5)', [
            randomUUID(),
            t,
            c,
            `12345678901234567890.${String(i).padStart(10, '0')}`,
            JSON.stringify({ i, big: 2 ** 60 + i, s: "quote ' and \\ backslash" }),
          ]);
        }
      }
    },
    async seedObjects(ts, count = 12) {
      for (const t of ts) {
        for (let i = 0; i < count; i++) {
          await s3.send(
            new PutObjectCommand({
              Bucket: shared,
              Key: `tenants/${t}/docs/file ${i} ü.txt`,
              Body: `${t} body ${i}`.repeat(i + 1),
            }),
          );
        }
      }
    },
    mv: (tenant, store, to, target, ...more) => [
      'tenant',
      'move',
      tenant,
      '--store',
      store,
      '--to',
      to,
      ...(target === undefined ? [] : ['--target', target]),
      '--config',
      config,
      ...more,
    ],
    moveEvents: (tenant) => auditEvents(auditDir, tenant, (e) => String(e.event_type).startsWith('placement_')),
    async close() {
      for (const name of databases)
        await su.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      for (const b of buckets) await deleteTestBucket(s3, b);
      await su.end();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
