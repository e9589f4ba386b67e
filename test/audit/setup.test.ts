/**
 * setupPostgresAudit from one admin URL (what the example server does): several processes may
 * start at once; each gets pools that run as the least-privileged roles, never as admin, directly
 * (startup options) and behind a transaction pooler (SET LOCAL in every transaction; the
 * PgBouncer pass runs this file with DATABASE_POOLER=transaction).
 */
import { randomBytes } from 'node:crypto';
import { setupPostgresAudit } from '@tenantscope/audit/postgres';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { directUrl, TEST_POOLER } from '../../packages/postgres/src/testing/fixture.ts';
import { sampleEvent } from './pg.ts';

const tag = `setup_${randomBytes(4).toString('hex')}`;
const pooler = TEST_POOLER;
afterAll(async () => {
  const c = new pg.Client({ connectionString: directUrl(inject('databaseUrl')) });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`);
    for (const r of ['owner', 'writer', 'auditor']) await c.query(`DROP ROLE IF EXISTS ${tag}_${r}`);
  } finally {
    await c.end();
  }
});

describe('setupPostgresAudit', () => {
  it('three concurrent set-ups of the same log all succeed and share one verified chain', async () => {
    const logs = await Promise.all(
      Array.from({ length: 3 }, () =>
        setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: tag, rolePrefix: tag, pooler }),
      ),
    );
    try {
      await Promise.all(
        logs.flatMap((log, i) =>
          Array.from({ length: 20 }, (_, j) => log.sink.write(sampleEvent('acme', i * 100 + j))),
        ),
      );
      const v = await logs[0]?.verify('acme');
      expect(v?.streams[0]).toMatchObject({ ok: true, events: 60, lastSeq: 60 });
      await logs[0]?.anchor();
      expect((await logs[1]?.verify())?.ok).toBe(true);
    } finally {
      await Promise.all(logs.map((l) => l.close()));
    }
  });

  it('a session started as the writer role (as the sink pool is) cannot read or change the log', async () => {
    const log = await setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: tag, rolePrefix: tag, pooler });
    try {
      const c = new pg.Client({
        connectionString: dbUrl(),
        ...(pooler === 'none' ? { options: `-c role=${tag}_writer` } : {}),
      });
      await c.connect();
      try {
        // Behind a transaction pooler the sink's transactions start with SET LOCAL ROLE: the same here.
        const inTx = async (sql: string) => {
          if (pooler === 'none') return c.query(sql);
          await c.query(`BEGIN; SET LOCAL ROLE ${tag}_writer`);
          try {
            return await c.query(sql);
          } finally {
            await c.query('ROLLBACK');
          }
        };
        expect((await inTx('SELECT current_user AS u')).rows[0].u).toBe(`${tag}_writer`);
        await expect(inTx('SELECT * FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
        await expect(inTx('DELETE FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.end();
      }
    } finally {
      await log.close();
    }
  });

  it("pooler: 'transaction': writes run as the writer with durable commits, and no role or setting outlives its transaction", async () => {
    const log = await setupPostgresAudit({
      adminUrl: inject('databaseUrl'),
      database: tag,
      rolePrefix: tag,
      pooler: 'transaction',
    });
    const admin = new pg.Pool({ connectionString: dbUrl(), max: 4 });
    try {
      await Promise.all(Array.from({ length: 200 }, (_, i) => log.sink.write(sampleEvent(`t${i % 7}`, i))));
      expect((await log.verify()).ok).toBe(true);
      expect((await log.events('t3', 1000)).length).toBeGreaterThan(0);
      // The writer's grant is what lets a batch in: without it the write fails (as admin it would not).
      const append = 'FUNCTION tenantscope_audit.append(text[], timestamptz[], text[])';
      await admin.query(`REVOKE EXECUTE ON ${append} FROM ${tag}_writer`);
      try {
        await expect(log.sink.write(sampleEvent('acme', 1))).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
      } finally {
        await admin.query(`GRANT EXECUTE ON ${append} TO ${tag}_writer`);
      }
      await log.sink.write(sampleEvent('acme', 2));
      // Behind PgBouncer these admin sessions land on the server connections the sink used: they see
      // neither the writer's role nor its synchronous_commit.
      const fresh = new pg.Client({ connectionString: directUrl(dbUrl()) });
      await fresh.connect();
      const sc = (await fresh.query("SELECT current_setting('synchronous_commit') AS sc")).rows[0].sc;
      await fresh.end();
      const seen = await Promise.all(
        Array.from({ length: 100 }, () =>
          admin.query(
            "SELECT current_user AS u, current_setting('role') AS r, current_setting('synchronous_commit') AS sc",
          ),
        ),
      );
      const user = new URL(inject('databaseUrl')).username;
      for (const r of seen) expect(r.rows[0]).toEqual({ u: user, r: 'none', sc });
    } finally {
      await admin.end();
      await log.close();
    }
  });

  it('a bad pooler value is refused before anything is created', async () => {
    const other = `setup_${randomBytes(4).toString('hex')}`;
    await expect(
      // @ts-expect-error: not a pooler mode
      setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: other, rolePrefix: other, pooler: 'statement' }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    const c = new pg.Client({ connectionString: directUrl(inject('databaseUrl')) });
    await c.connect();
    try {
      expect((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [other])).rowCount).toBe(0);
      expect((await c.query('SELECT 1 FROM pg_roles WHERE rolname LIKE $1', [`${other}%`])).rowCount).toBe(0);
    } finally {
      await c.end();
    }
  });

  it.runIf(pooler === 'transaction')(
    "pooler 'none' declared behind a transaction pooler fails at set-up (INVALID_CONFIG), never as admin",
    async () => {
      await expect(
        setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: tag, rolePrefix: tag, pooler: 'none' }),
      ).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    },
  );
  if (pooler !== 'transaction') {
    console.log("[audit setup] skipped the 'none'-behind-a-pooler test: DATABASE_POOLER is not 'transaction'");
  }
});

/** The admin URL on the audit database. */
function dbUrl(): string {
  const u = new URL(inject('databaseUrl'));
  u.pathname = `/${tag}`;
  return u.toString();
}
