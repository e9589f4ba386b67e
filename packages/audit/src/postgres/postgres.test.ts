import { canonicalJson } from '@tenantscope/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AuditTestDb, createAuditTestDb, sampleEvent } from '../../../../test/audit/pg.ts';
import { type BreakCause, GENESIS_HASH, linkHash } from '../chain.ts';
import { PostgresAuditSink } from './sink.ts';
import { PostgresAuditStore, purgePostgresAudit } from './store.ts';

let db: AuditTestDb;
let sink: PostgresAuditSink;
let store: PostgresAuditStore;

beforeAll(async () => {
  db = await createAuditTestDb(inject('databaseUrl'), 'pgsink');
  sink = new PostgresAuditSink({ pool: db.writer });
  store = new PostgresAuditStore({ pool: db.auditor });
});
afterAll(async () => {
  await sink?.close();
  await db?.close();
});

/** Runs SQL as the superuser with triggers off, as an attacker with full rights would. */
async function tamper(sql: string, params: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: db.urls.admin });
  await c.connect();
  try {
    await c.query('SET session_replication_role = replica');
    await c.query(sql, params);
  } finally {
    await c.end();
  }
}

async function writeStream(tenant: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await sink.write(sampleEvent(tenant, i));
}

async function expectErrorCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code });
}

describe('PostgresAuditSink', () => {
  it('chains concurrent writes into one gap-free chain per tenant', async () => {
    const tenants = ['conc_a', 'conc_b', 'conc_c'];
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) writes.push(sink.write(sampleEvent(tenants[i % 3] as string, i)));
    await Promise.all(writes);
    for (const t of tenants) {
      const r = await store.verify(t);
      expect(r.ok).toBe(true);
      expect(r.streams[0]).toMatchObject({ stream: t, events: 100, firstSeq: 1, lastSeq: 100 });
      expect(await store.count(t)).toBe(100);
    }
  });

  it('stores the hash the chain definition gives: SHA-256(prev_hash ‖ canonical event)', async () => {
    await writeStream('def_check', 2);
    const r = await db.admin.query(
      `SELECT seq, encode(prev_hash,'hex') AS prev, encode(hash,'hex') AS hash, event
         FROM tenantscope_audit.events WHERE stream = 'def_check' ORDER BY seq`,
    );
    expect(r.rows[0].prev).toBe(GENESIS_HASH);
    expect(r.rows[0].hash).toBe(linkHash(GENESIS_HASH, r.rows[0].event));
    expect(r.rows[1].prev).toBe(r.rows[0].hash);
    expect(r.rows[0].event).toBe(canonicalJson(JSON.parse(r.rows[0].event)));
    // personal data minimised by default: the address is truncated to its network
    expect(JSON.parse(r.rows[0].event).ip_address).toBe('10.1.2.0/24');
  });

  it('refuses an event with argument values instead of a hash, and an invalid tenant id', async () => {
    await expectErrorCode(sink.write(sampleEvent('bad_args', 1, { args_hash: '{"ssn":"123"}' })), 'INVALID_ARGUMENT');
    await expectErrorCode(sink.write(sampleEvent('../etc', 1)), 'INVALID_ARGUMENT');
    expect(await store.count('bad_args')).toBe(0);
  });

  it('drops fields that are not part of the event schema (no argument values can slip in)', async () => {
    await sink.write({ ...sampleEvent('extra_fields', 1), args: { password: 'hunter2' } } as never);
    const [e] = await store.events('extra_fields');
    expect(JSON.stringify(e)).not.toContain('hunter2');
  });
});

describe('modes and failures', () => {
  it('fails closed: a write that cannot be committed rejects with AUDIT_WRITE_FAILED', async () => {
    // the auditor role may not append
    const wrong = new PostgresAuditSink({ pool: db.auditor });
    await expectErrorCode(wrong.write(sampleEvent('closed', 1)), 'AUDIT_WRITE_FAILED');
    const down = new PostgresAuditSink({ pool: new pg.Pool({ connectionString: 'postgres://x:y@127.0.0.1:1/none' }) });
    await expectErrorCode(down.write(sampleEvent('closed', 2)), 'AUDIT_WRITE_FAILED');
    expect(await store.count('closed')).toBe(0);
  });

  it('async mode resolves before commit; flush() makes it durable; a failed batch is reported as lost', async () => {
    const fast = new PostgresAuditSink({ pool: db.writer, mode: 'async' });
    const writes = Array.from({ length: 50 }, (_, i) => fast.write(sampleEvent('async_mode', i)));
    await Promise.all(writes);
    expect(fast.pending + (await store.count('async_mode'))).toBeGreaterThan(0);
    await fast.flush();
    expect(await store.count('async_mode')).toBe(50);
    const lost: number[] = [];
    const broken = new PostgresAuditSink({
      pool: db.auditor, // cannot append
      mode: 'async',
      onAsyncError: (err, n) => {
        expect(err.code).toBe('AUDIT_WRITE_FAILED');
        lost.push(n);
      },
    });
    await broken.write(sampleEvent('async_lost', 1)); // resolves: that is the risk of async mode
    await broken.flush();
    expect(lost).toEqual([1]);
    expect(await store.count('async_lost')).toBe(0);
  });
});

describe('privileges', () => {
  it('the writer can append but cannot UPDATE, DELETE, TRUNCATE, read, or choose chain fields', async () => {
    await writeStream('priv', 2);
    const w = db.writer;
    await expect(w.query(`UPDATE tenantscope_audit.events SET event = '{}'`)).rejects.toMatchObject({ code: '42501' });
    await expect(w.query('DELETE FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
    await expect(w.query('TRUNCATE tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
    await expect(w.query('SELECT * FROM tenantscope_audit.events')).rejects.toMatchObject({ code: '42501' });
    await expect(
      w.query(`INSERT INTO tenantscope_audit.events (stream, seq, prev_hash, hash, ts, event)
               VALUES ('priv', 99, '\\x00', '\\x00', now(), '{}')`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      w.query(`INSERT INTO tenantscope_audit.anchors (stream, seq, hash, kind) VALUES ('priv', 1, '\\x00', 'head')`),
    ).rejects.toMatchObject({ code: '42501' });
    // A plain INSERT of just the event is allowed, and the database chains it too.
    await w.query('INSERT INTO tenantscope_audit.events (event) VALUES ($1)', [canonicalJson(sampleEvent('priv', 3))]);
    // Setting the append() flag does not let a direct insert skip the chain: the row is refused.
    const c = await w.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('tenantscope_audit.append', 'on', true)`);
      await expect(
        c.query('INSERT INTO tenantscope_audit.events (event) VALUES ($1)', [canonicalJson(sampleEvent('priv', 4))]),
      ).rejects.toMatchObject({ code: '23502' });
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
    const v = await store.verify('priv');
    expect(v.ok).toBe(true);
    expect(v.streams[0]?.lastSeq).toBe(3);
  });

  it('even the owning role is refused UPDATE, DELETE and TRUNCATE by triggers, on events and anchors', async () => {
    await store.anchor(['priv']);
    for (const t of ['events', 'anchors']) {
      await expect(db.owner.query(`UPDATE tenantscope_audit.${t} SET seq = seq + 1`)).rejects.toThrow(/append-only/);
      await expect(db.owner.query(`DELETE FROM tenantscope_audit.${t}`)).rejects.toThrow(/append-only/);
      await expect(db.owner.query(`TRUNCATE tenantscope_audit.${t}`)).rejects.toThrow(/append-only/);
    }
    await expect(db.auditor.query(`UPDATE tenantscope_audit.anchors SET seq = 1`)).rejects.toMatchObject({
      code: '42501',
    });
    // the auditor may checkpoint heads but not forge a retention checkpoint (which would hide a prefix)
    await expect(
      db.auditor.query(
        `INSERT INTO tenantscope_audit.anchors (stream, seq, hash, kind) VALUES ('priv', 2, '\\x00', 'purge')`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    // and cannot append events or delete anything
    await expect(db.auditor.query(`DELETE FROM tenantscope_audit.events`)).rejects.toMatchObject({ code: '42501' });
    expect((await store.verify('priv')).ok).toBe(true);
  });
});

describe('tamper drills (privileged SQL, triggers disabled)', () => {
  const N = 20;
  const E = 'tenantscope_audit.events';
  type Drill = { name: string; at: number; cause: BreakCause; expectSeq: number; run(stream: string): Promise<void> };
  const renumberFrom = async (stream: string, from: number, delta: number) => {
    await tamper(`UPDATE ${E} SET seq = -seq WHERE stream = $1 AND seq >= $2`, [stream, from]);
    await tamper(`UPDATE ${E} SET seq = -seq + $2 WHERE stream = $1 AND seq < 0`, [stream, delta]);
  };
  /** Every drill that applies at position k. */
  const drillsAt = (k: number): Drill[] => {
    const drills: Drill[] = [];
    drills.push({
      name: `edit seq ${k}`,
      at: k,
      cause: 'edit',
      expectSeq: k,
      run: (s) =>
        tamper(`UPDATE ${E} SET event = replace(event, '"ok"', '"error"') WHERE stream=$1 AND seq=$2`, [s, k]),
    });
    drills.push({
      name: `edit prev_hash of seq ${k}`,
      at: k,
      cause: 'edit',
      expectSeq: k,
      run: (s) => tamper(`UPDATE ${E} SET prev_hash = sha256('x') WHERE stream=$1 AND seq=$2`, [s, k]),
    });
    if (k < N) {
      drills.push({
        name: `delete seq ${k}`,
        at: k,
        cause: 'deletion',
        expectSeq: k,
        run: (s) => tamper(`DELETE FROM ${E} WHERE stream=$1 AND seq=$2`, [s, k]),
      });
      drills.push({
        name: `delete seq ${k} and renumber the rest`,
        at: k,
        cause: 'deletion',
        expectSeq: k,
        run: async (s) => {
          await tamper(`DELETE FROM ${E} WHERE stream=$1 AND seq=$2`, [s, k]);
          await renumberFrom(s, k + 1, -1);
        },
      });
      drills.push({
        name: `swap seq ${k} and ${k + 1}`,
        at: k,
        cause: 'reorder',
        expectSeq: k,
        run: async (s) => {
          await tamper(`UPDATE ${E} SET seq = -1 WHERE stream=$1 AND seq=$2`, [s, k]);
          await tamper(`UPDATE ${E} SET seq = $2 WHERE stream=$1 AND seq=$3`, [s, k, k + 1]);
          await tamper(`UPDATE ${E} SET seq = $2 WHERE stream=$1 AND seq=-1`, [s, k + 1]);
        },
      });
    }
    if (k + 5 <= N) {
      drills.push({
        name: `move seq ${k + 5} to ${k} and ${k} to ${k + 5}`,
        at: k,
        cause: 'reorder',
        expectSeq: k,
        run: async (s) => {
          await tamper(`UPDATE ${E} SET seq = -1 WHERE stream=$1 AND seq=$2`, [s, k]);
          await tamper(`UPDATE ${E} SET seq = $2 WHERE stream=$1 AND seq=$3`, [s, k, k + 5]);
          await tamper(`UPDATE ${E} SET seq = $2 WHERE stream=$1 AND seq=-1`, [s, k + 5]);
        },
      });
    }
    // A forged event with a correctly computed link (the attacker knows the algorithm).
    drills.push({
      name: `insert a well-formed forged event at seq ${k}`,
      at: k,
      cause: 'insertion',
      expectSeq: k,
      run: async (s) => {
        await renumberFrom(s, k, 1);
        const forged = canonicalJson(sampleEvent(s, 999, { tool_name: 'forged' }));
        await tamper(
          `INSERT INTO ${E} (stream, seq, prev_hash, hash, ts, event)
           SELECT $1, $2, p.h, sha256(p.h || convert_to($3, 'UTF8')), now(), $3
           FROM (SELECT coalesce((SELECT hash FROM ${E} WHERE stream=$1 AND seq=$2-1),
                                 '\\x${GENESIS_HASH}'::bytea) AS h) p`,
          [s, k, forged],
        );
      },
    });
    drills.push({
      name: `insert a forged event with made-up hashes at seq ${k}`,
      at: k,
      cause: 'insertion',
      expectSeq: k,
      run: async (s) => {
        await renumberFrom(s, k, 1);
        const forged = canonicalJson(sampleEvent(s, 998, { tool_name: 'forged' }));
        await tamper(
          `INSERT INTO ${E} (stream, seq, prev_hash, hash, ts, event) VALUES ($1, $2, sha256('a'), sha256('b'), now(), $3)`,
          [s, k, forged],
        );
      },
    });
    return drills;
  };
  const drills: Drill[] = [1, 10, N].flatMap(drillsAt);
  for (const m of [1, 3]) {
    drills.push({
      name: `truncate the last ${m} events after an anchor`,
      at: N - m + 1,
      cause: 'truncation',
      expectSeq: N - m + 1,
      run: async (s) => {
        await store.anchor([s]);
        await tamper(`DELETE FROM ${E} WHERE stream=$1 AND seq > $2`, [s, N - m]);
      },
    });
  }
  drills.push({
    name: 'truncate the whole stream after an anchor',
    at: 1,
    cause: 'truncation',
    expectSeq: 1,
    run: async (s) => {
      await store.anchor([s]);
      await tamper(`DELETE FROM ${E} WHERE stream=$1`, [s]);
    },
  });
  drills.push({
    name: 'edit seq 5 and recompute every later hash, after an anchor',
    at: 5,
    cause: 'rewrite',
    expectSeq: N,
    run: async (s) => {
      await store.anchor([s]);
      const rows = (await db.admin.query(`SELECT seq, event FROM ${E} WHERE stream=$1 ORDER BY seq`, [s])).rows as {
        seq: string;
        event: string;
      }[];
      let prev = GENESIS_HASH;
      for (const r of rows) {
        const event = Number(r.seq) === 5 ? r.event.replace('"ok"', '"error"') : r.event;
        const hash = linkHash(prev, event);
        await tamper(
          `UPDATE ${E} SET event=$3, prev_hash=decode($4,'hex'), hash=decode($5,'hex') WHERE stream=$1 AND seq=$2`,
          [s, r.seq, event, prev, hash],
        );
        prev = hash;
      }
    },
  });

  it(`detects every drill (${drills.length}) and names the cause and place`, async () => {
    const results: string[] = [];
    for (const [i, d] of drills.entries()) {
      const stream = `drill_${i}`;
      await writeStream(stream, N);
      expect((await store.verify(stream)).ok).toBe(true);
      await d.run(stream);
      const r = await store.verify(stream);
      const b = r.streams[0]?.break;
      results.push(`${d.name}: ${b ? `${b.cause}@${b.seq}` : 'NOT DETECTED'}`);
      expect({ drill: d.name, ok: r.ok, cause: b?.cause, seq: b?.seq }).toEqual({
        drill: d.name,
        ok: false,
        cause: d.cause,
        seq: d.expectSeq,
      });
    }
    // untouched streams still verify
    expect((await store.verify('priv')).ok).toBe(true);
    console.log(`[audit] tamper drills: ${results.length}/${drills.length} detected\n  ${results.join('\n  ')}`);
  });

  it('detects randomly placed tampering (seeded; AUDIT_DRILL_SEED to replay)', async () => {
    const seed = Number(process.env.AUDIT_DRILL_SEED ?? Date.now() % 1_000_000);
    let x = seed;
    const rand = (n: number) => {
      // mulberry32
      x = (x + 0x6d2b79f5) | 0;
      let t = Math.imul(x ^ (x >>> 15), 1 | x);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n;
    };
    const misses: string[] = [];
    const TRIALS = 30;
    for (let i = 0; i < TRIALS; i++) {
      const k = 1 + Math.floor(rand(N));
      const options = drillsAt(k);
      const d = options[Math.floor(rand(options.length))] as Drill;
      const stream = `rnd_${i}`;
      await writeStream(stream, N);
      await d.run(stream);
      const b = (await store.verify(stream)).streams[0]?.break;
      if (b?.cause !== d.cause || b.seq !== d.expectSeq)
        misses.push(`${d.name}: got ${b ? `${b.cause}@${b.seq}` : 'nothing'}`);
    }
    expect(misses, `seed ${seed}`).toEqual([]);
    console.log(`[audit] ${TRIALS} random tamper drills (seed ${seed}): all detected with cause and place`);
  });
});

describe('retention', () => {
  it('purges old events, keeps the remainder verifiable, audits the purge, refuses < 365 days', async () => {
    const t = 'retained';
    const old = Date.now() - 500 * 86_400_000;
    for (let i = 1; i <= 10; i++) {
      await sink.write(sampleEvent(t, i, { timestamp: new Date(old + i * 1000).toISOString() }));
    }
    for (let i = 11; i <= 15; i++) await sink.write(sampleEvent(t, i));
    await store.anchor([t]);
    await expect(purgePostgresAudit({ pool: db.owner, tenant: t, olderThanDays: 364 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    // the writer and the auditor cannot purge
    await expect(purgePostgresAudit({ pool: db.writer, tenant: t })).rejects.toMatchObject({
      code: 'AUDIT_PURGE_FAILED',
    });
    const res = await purgePostgresAudit({ pool: db.owner, tenant: t });
    expect(res).toMatchObject({ purged: 10, purgedThrough: 10, purgeEventSeq: 16 });
    const v = await store.verify(t);
    expect(v.ok).toBe(true);
    expect(v.streams[0]).toMatchObject({ firstSeq: 11, lastSeq: 16, events: 6, purgedThrough: 10 });
    const events = await store.events(t);
    const purge = events.find((e) => e.event_type === 'audit_purge') as unknown as { details: Record<string, unknown> };
    expect(purge?.details).toMatchObject({ purged: 10, purged_through_seq: 10, retention_days: 400 });
    // writes continue on the same chain
    await sink.write(sampleEvent(t, 17));
    expect((await store.verify(t)).ok).toBe(true);
    // deleting the first remaining event is still caught after a purge
    await tamper(`DELETE FROM tenantscope_audit.events WHERE stream=$1 AND seq=11`, [t]);
    expect((await store.verify(t)).streams[0]?.break).toMatchObject({ cause: 'deletion', seq: 11 });
  });

  it('a purge of a whole stream keeps the chain going from the checkpoint', async () => {
    const t = 'all_old';
    const old = Date.now() - 500 * 86_400_000;
    for (let i = 1; i <= 5; i++) await sink.write(sampleEvent(t, i, { timestamp: new Date(old).toISOString() }));
    const res = await purgePostgresAudit({ pool: db.owner, tenant: t, olderThanDays: 365 });
    expect(res).toMatchObject({ purged: 5, purgedThrough: 5, purgeEventSeq: 6 });
    await sink.write(sampleEvent(t, 7));
    const v = await store.verify(t);
    expect(v.ok).toBe(true);
    expect(v.streams[0]).toMatchObject({ firstSeq: 6, lastSeq: 7 });
  });
});
