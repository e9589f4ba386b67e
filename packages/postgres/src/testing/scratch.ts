import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** A throwaway database with its own roles, so suites can share one server in parallel. */
export interface ScratchDatabase {
  name: string;
  /** Superuser on the scratch database. */
  superUrl: string;
  /** The schema/table owner (not a superuser). Installs tenantscope and creates tables. */
  ownerRole: string;
  ownerUrl: string;
  /** The least-privileged application role: no superuser, no BYPASSRLS, owns nothing. */
  appRole: string;
  appUrl: string;
  /** Builds a URL for another role created in this scratch (password `pw`). */
  urlFor(role: string, password?: string): string;
  /** A unique role name with this scratch's suffix. */
  roleName(label: string): string;
  /** Drops the database and every role created through `roleName`. */
  drop(): Promise<void>;
}

const PASSWORD = 'scratch-pw';

export async function createScratchDatabase(serverSuperUrl: string, label: string): Promise<ScratchDatabase> {
  const suffix = randomBytes(4).toString('hex');
  const name = `ts_${label}_${suffix}`;
  const roles: string[] = [];
  const roleName = (l: string) => {
    const r = `ts_${l}_${suffix}`;
    roles.push(r);
    return r;
  };
  const ownerRole = roleName('owner');
  const appRole = roleName('app');
  const su = new pg.Client({ connectionString: serverSuperUrl });
  await su.connect();
  try {
    await su.query(`CREATE ROLE ${ownerRole} LOGIN PASSWORD '${PASSWORD}' NOSUPERUSER NOBYPASSRLS`);
    await su.query(`CREATE ROLE ${appRole} LOGIN PASSWORD '${PASSWORD}' NOSUPERUSER NOBYPASSRLS`);
    await su.query(`CREATE DATABASE ${name} OWNER ${ownerRole}`);
    await su.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC`);
    await su.query(`GRANT CONNECT ON DATABASE ${name} TO ${appRole}`);
  } finally {
    await su.end();
  }
  const urlFor = (role: string, password = PASSWORD) => {
    const u = new URL(serverSuperUrl);
    u.username = role;
    u.password = password;
    u.pathname = `/${name}`;
    return u.toString();
  };
  const superU = new URL(serverSuperUrl);
  superU.pathname = `/${name}`;
  // Only the owner may create in schema public of the scratch database.
  const owner = new pg.Client({ connectionString: superU.toString() });
  await owner.connect();
  await owner.query(
    `REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO PUBLIC; ALTER SCHEMA public OWNER TO ${ownerRole}`,
  );
  await owner.end();
  return {
    name,
    superUrl: superU.toString(),
    ownerRole,
    ownerUrl: urlFor(ownerRole),
    appRole,
    appUrl: urlFor(appRole),
    urlFor,
    roleName,
    async drop() {
      const c = new pg.Client({ connectionString: serverSuperUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        for (const r of roles) await c.query(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
      } finally {
        await c.end();
      }
    },
  };
}

export { PASSWORD as SCRATCH_PASSWORD };
