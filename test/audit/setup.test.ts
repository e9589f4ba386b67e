/**
 * setupPostgresAudit from one admin URL (what the example server does): several processes may
 * start at once; each gets pools that run as the least-privileged roles, never as admin.
 */
import { randomBytes } from 'node:crypto';
import { setupPostgresAudit } from '@tenantscope/audit/postgres';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { sampleEvent } from './pg.ts';

const tag = `setup_${randomBytes(4).toString('hex')}`;
afterAll(async () => {
  const c = new pg.Client({ connectionString: inject('databaseUrl') });
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
        setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: tag, rolePrefix: tag }),
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
    const log = await setupPostgresAudit({ adminUrl: inject('databaseUrl'), database: tag, rolePrefix: tag });
    try {
      const writerUrl = new URL(inject('databaseUrl'));
      writerUrl.pathname = `/${tag}`;
      const c = new pg.Client({ connectionString: writerUrl.toString(), options: `-c role=${tag}_writer` });
      await c.connect();
      try {
        expect((await c.query('SELECT current_user AS u')).rows[0].u).toBe(`${tag}_writer`);
        await expect(c.query('SELECT * FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
        await expect(c.query('DELETE FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.end();
      }
    } finally {
      await log.close();
    }
  });
});
