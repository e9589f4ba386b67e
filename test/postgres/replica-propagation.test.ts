/**
 * Revocations and halts reach other replicas through LISTEN/NOTIFY: two stores on two pools (two
 * replicas), each with its own LISTEN connection. Measures and prints the time from the write on
 * A returning to B refusing. The pools may go through a transaction pooler (DATABASE_URL); LISTEN
 * needs a direct connection (DATABASE_DIRECT_URL when set, else DATABASE_URL).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PostgresRevocationStore } from '../../packages/postgres/src/replica-state.ts';
import { directUrl } from '../../packages/postgres/src/testing/fixture.ts';

let admin: pg.Pool;
let a: pg.Pool;
let b: pg.Pool;
let listenUrl: string;
const db = `replica_notify_${process.pid}`;
const schema = 'notify_test';

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: directUrl(inject('databaseUrl')), max: 1 });
  await admin.query(`drop database if exists ${db} with (force)`);
  await admin.query(`create database ${db}`);
  const url = new URL(inject('databaseUrl'));
  url.pathname = `/${db}`;
  a = new pg.Pool({ connectionString: url.toString(), max: 2 });
  b = new pg.Pool({ connectionString: url.toString(), max: 2 });
  for (const p of [a, b]) p.on('error', () => {});
  listenUrl = directUrl(url.toString());
  await new PostgresRevocationStore(a, { schema }).migrate();
});
afterAll(async () => {
  await a?.end();
  await b?.end();
  await admin?.query(`drop database if exists ${db} with (force)`);
  await admin?.end();
});

/** Calls `check` every millisecond until it is true; returns the elapsed ms (or Infinity after `limitMs`). */
async function until(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if (await check()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1));
  }
  return Number.POSITIVE_INFINITY;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;

describe('revocation and halt propagation (LISTEN/NOTIFY)', () => {
  it('a halt or a revocation on replica A is refused by replica B within 100 ms (median; every one within 1 s), though B caches answers for 60 s', async () => {
    // cacheMs 60 s: without notifications B would keep answering "not halted" for a minute.
    const storeA = new PostgresRevocationStore(a, { schema, cacheMs: 60_000, listenConnectionString: listenUrl });
    const storeB = new PostgresRevocationStore(b, { schema, cacheMs: 60_000, listenConnectionString: listenUrl });
    try {
      expect(await storeA.listening()).toBe(true);
      expect(await storeB.listening()).toBe(true);
      const halts: number[] = [];
      const revokes: number[] = [];
      for (let i = 0; i < 10; i++) {
        const tenant = `t${i}`;
        const jti = `jti-${i}`;
        // B has cached "not halted" / "not revoked"
        expect(await storeB.isTenantHalted(tenant)).toBe(false);
        expect(await storeB.isTokenRevoked(jti)).toBe(false);
        await storeA.haltTenant(tenant, 'drill');
        halts.push(await until(() => storeB.isTenantHalted(tenant), 1000));
        await storeA.revokeToken(jti, new Date(Date.now() + 60_000));
        revokes.push(await until(() => storeB.isTokenRevoked(jti), 1000));
        // resume is seen at once too (halted answers are never cached)
        await storeA.resumeTenant(tenant);
        expect(await storeB.isTenantHalted(tenant)).toBe(false);
      }
      const fmt = (xs: number[]) =>
        `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms over ${xs.length}`;
      console.log(`[propagation] halt on A -> refused on B: ${fmt(halts)}`);
      console.log(`[propagation] revoke on A -> refused on B: ${fmt(revokes)}`);
      // The goal is 100 ms, the requirement 1 s: the median must meet the goal, every one the
      // requirement (a loaded 2-core CI machine has shown single outliers past 100 ms).
      expect(median(halts)).toBeLessThanOrEqual(100);
      expect(median(revokes)).toBeLessThanOrEqual(100);
      expect(Math.max(...halts, ...revokes)).toBeLessThanOrEqual(1000);
    } finally {
      await storeA.close();
      await storeB.close();
    }
  });

  it('without a LISTEN connection the store still works and falls back to polling (cacheMs)', async () => {
    const storeA = new PostgresRevocationStore(a, { schema, cacheMs: 0 });
    const storeB = new PostgresRevocationStore(b, { schema, cacheMs: 150 });
    expect(await storeB.listening()).toBe(false);
    expect(await storeB.isTenantHalted('poll')).toBe(false);
    await storeA.haltTenant('poll', 'drill');
    const ms = await until(() => storeB.isTenantHalted('poll'), 2000);
    console.log(`[propagation] polling fallback (cacheMs 150): ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThanOrEqual(300);
  });

  it('a LISTEN connection that drops is re-established, and the cache is cleared so nothing missed is served', async () => {
    const storeA = new PostgresRevocationStore(a, { schema, cacheMs: 0 });
    const storeB = new PostgresRevocationStore(b, { schema, cacheMs: 60_000, listenConnectionString: listenUrl });
    try {
      expect(await storeB.listening()).toBe(true);
      expect(await storeB.isTenantHalted('dropped')).toBe(false);
      // kill B's listener backend from outside
      await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and query ilike 'LISTEN%'`,
        [db],
      );
      await storeA.haltTenant('dropped', 'while B was not listening');
      const ms = await until(() => storeB.isTenantHalted('dropped'), 3000);
      console.log(`[propagation] after a dropped LISTEN connection: ${ms.toFixed(1)} ms`);
      expect(ms).toBeLessThan(3000);
      expect(await storeB.listening()).toBe(true);
    } finally {
      await storeB.close();
    }
  });

  it('refuses a listenConnectionString that is not a string', () => {
    expect(() => new PostgresRevocationStore(a, { schema, listenConnectionString: 42 as never })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
  });
});
