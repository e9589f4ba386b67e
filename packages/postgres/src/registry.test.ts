/**
 * The placement registry against a real PostgreSQL: no row = shared; the move steps in order and
 * nothing out of order; a paused tenant's calls wait then fail retryably while another tenant's
 * never wait; a change reaches a second registry (another replica) by LISTEN/NOTIFY long before
 * its cache would expire; garbage rows and unknown stores fail closed.
 */
import type { Tenant } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { databaseUrl, type PlacementRegistry, placementRegistry, type TierTarget } from './registry.ts';
import { directUrl } from './testing/fixture.ts';
import { createScratchDatabase, type ScratchDatabase } from './testing/scratch.ts';

let db: ScratchDatabase;
let pool: pg.Pool;
let reg: PlacementRegistry;
let acme: Tenant;
let globex: Tenant;
const schema = 'reg_test';
type Pl = { tier: 'shared' } | { tier: 'dedicated'; db: string };
const toPl = (t: TierTarget): Pl =>
  t.tier === 'shared' ? { tier: 'shared' } : { tier: 'dedicated', db: t.target as string };

beforeAll(async () => {
  db = await createScratchDatabase(inject('databaseUrl'), 'registry');
  pool = new pg.Pool({ connectionString: db.ownerUrl, max: 4 });
  reg = placementRegistry({ pool, schema, cacheMs: 60_000, pauseWaitMs: 300 });
  await reg.migrate();
  const issuer = await createTestIssuer();
  acme = await issuer.tenant('acme');
  globex = await issuer.tenant('globex');
});
afterAll(async () => {
  await reg?.close();
  await pool?.end();
  await db?.drop();
});

describe('placementRegistry', () => {
  it('no row is shared; a move goes copying → paused → cleanup → active and lands on the new tier', async () => {
    const resolve = reg.resolver('postgres', toPl);
    expect(await resolve(acme)).toEqual({ tier: 'shared' });
    const begun = await reg.beginMove('acme', 'postgres', { tier: 'dedicated', target: 'acme_db' });
    expect(begun).toMatchObject({ state: 'copying', tier: 'shared', other: { tier: 'dedicated', target: 'acme_db' } });
    // Resuming the same move is allowed; another destination is not.
    await expect(reg.beginMove('acme', 'postgres', { tier: 'dedicated', target: 'acme_db' })).resolves.toMatchObject({
      state: 'copying',
    });
    await expect(reg.beginMove('acme', 'postgres', { tier: 'dedicated', target: 'other_db' })).rejects.toMatchObject({
      code: 'PLACEMENT_MOVE_CONFLICT',
    });
    // Out of order: a switch before the pause.
    await expect(reg.switchPlacement('acme', 'postgres')).rejects.toMatchObject({ code: 'PLACEMENT_MOVE_CONFLICT' });
    expect(await resolve(acme)).toEqual({ tier: 'shared' });
    await reg.pause('acme', 'postgres');
    const t0 = Date.now();
    await expect(resolve(acme)).rejects.toMatchObject({ code: 'PLACEMENT_PAUSED', status: 503 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    // A replica that waits up to a minute on a pause: no race with the machine's speed below.
    const patient = placementRegistry({ pool, schema, cacheMs: 60_000, pauseWaitMs: 60_000 });
    try {
      const resolvePatient = patient.resolver('postgres', toPl);
      const waiting = Promise.resolve(resolvePatient(acme));
      let settled = false;
      void waiting.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Another tenant never waits: answered while acme's call is still waiting.
      expect(await resolvePatient(globex)).toEqual({ tier: 'shared' });
      expect(settled).toBe(false);
      // The call waiting on the pause goes through once the placement switches.
      await reg.switchPlacement('acme', 'postgres');
      expect(await waiting).toEqual({ tier: 'dedicated', db: 'acme_db' });
    } finally {
      await patient.close();
    }
    expect(await reg.get('acme', 'postgres')).toMatchObject({
      state: 'cleanup',
      tier: 'dedicated',
      other: { tier: 'shared', target: null },
    });
    await reg.finishMove('acme', 'postgres');
    expect(await reg.get('acme', 'postgres')).toMatchObject({ state: 'active', tier: 'dedicated', other: null });
    await expect(reg.beginMove('acme', 'postgres', { tier: 'dedicated', target: 'acme_db' })).rejects.toMatchObject({
      code: 'PLACEMENT_MOVE_CONFLICT',
    });
    // And back, with an abort in between.
    await reg.beginMove('acme', 'postgres', { tier: 'shared', target: null });
    await reg.abortMove('acme', 'postgres');
    expect(await resolve(acme)).toEqual({ tier: 'dedicated', db: 'acme_db' });
  });

  it('a change made through one registry reaches another by NOTIFY before its 60 s cache expires', async () => {
    const other = placementRegistry({ pool, schema, cacheMs: 60_000, listenConnectionString: directUrl(db.ownerUrl) });
    try {
      expect(await other.listening()).toBe(true);
      const resolve = other.resolver('s3', (t) => t);
      expect(await resolve(globex)).toEqual({ tier: 'shared', target: null });
      await reg.beginMove('globex', 's3', { tier: 'dedicated', target: 'globex-bucket' });
      await reg.pause('globex', 's3');
      await reg.switchPlacement('globex', 's3');
      const t0 = Date.now();
      let seen: unknown;
      while (Date.now() - t0 < 5000) {
        seen = await resolve(globex);
        if ((seen as TierTarget).tier === 'dedicated') break;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(seen).toEqual({ tier: 'dedicated', target: 'globex-bucket' });
      console.log(`[registry] a switch reached the other registry in ${Date.now() - t0} ms (cacheMs 60000)`);
    } finally {
      await other.close();
    }
  });

  it('garbage rows, unknown stores and bad targets fail closed with typed errors', async () => {
    const resolve = reg.resolver('qdrant', (t) => t);
    // A target that is not a collection name.
    await pool.query(
      `insert into ${schema}.placements (tenant, store, tier, target) values ('evil', 'qdrant', 'dedicated', 'a/../b')`,
    );
    const evil = await (await createTestIssuer()).tenant('evil');
    await expect(resolve(evil)).rejects.toMatchObject({ code: 'PLACEMENT_INVALID' });
    // A row whose tier the code does not know (constraint dropped by hand).
    await pool.query(`alter table ${schema}.placements drop constraint placements_tier_check`);
    await pool.query(
      `insert into ${schema}.placements (tenant, store, tier, target) values ('evil', 'postgres', 'platinum', 'x')`,
    );
    await expect(reg.resolver('postgres', toPl)(evil)).rejects.toMatchObject({ code: 'PLACEMENT_INVALID' });
    expect(() => reg.resolver('mongo' as 'postgres', toPl)).toThrow(
      expect.objectContaining({ code: 'PLACEMENT_INVALID' }),
    );
    await expect(
      reg.beginMove('acme', 'postgres', { tier: 'dedicated', target: 'x; drop table' }),
    ).rejects.toMatchObject({
      code: 'PLACEMENT_INVALID',
    });
    // A mapping that changes the tier is refused, not served.
    const lying = reg.resolver('postgres', () => ({ tier: 'shared' }) as const);
    await expect(lying(acme)).rejects.toMatchObject({ code: 'PLACEMENT_INVALID' });
    // Not a tenant.
    expect(() => resolve({ id: 'acme; drop' } as unknown as Tenant)).toThrow(
      expect.objectContaining({ code: 'NOT_A_TENANT' }),
    );
    expect(() => databaseUrl(db.ownerUrl, 'x/y')).toThrow(expect.objectContaining({ code: 'PLACEMENT_INVALID' }));
    expect(new URL(databaseUrl(db.ownerUrl, 'acme_db')).pathname).toBe('/acme_db');
  });

  it('a registry that cannot be reached fails with PLACEMENT_UNAVAILABLE', async () => {
    const dead = new pg.Pool({ connectionString: 'postgres://x:y@127.0.0.1:1/none', connectionTimeoutMillis: 500 });
    const r = placementRegistry({ pool: dead, schema });
    await expect(r.resolver('postgres', toPl)(acme)).rejects.toMatchObject({ code: 'PLACEMENT_UNAVAILABLE' });
    await dead.end();
  });

  it('the cache is bounded', async () => {
    const small = placementRegistry({ pool, schema, cacheMs: 60_000, maxEntries: 2 });
    const resolve = small.resolver('s3', (t) => t);
    const issuer = await createTestIssuer();
    const ts = await Promise.all(['t1', 't2', 't3'].map((id) => issuer.tenant(id)));
    for (const t of ts) await resolve(t);
    // t1 was pushed out: answered by a read (a promise), t3 still from the cache (a value).
    expect(resolve(ts[0] as Tenant)).toBeInstanceOf(Promise);
    expect(resolve(ts[2] as Tenant)).not.toBeInstanceOf(Promise);
  });
});
