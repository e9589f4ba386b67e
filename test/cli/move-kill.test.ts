/**
 * `tenantscope tenant move` killed with SIGKILL at every kill point (TENANTSCOPE_TEST_KILL_AT), for
 * Postgres and S3. After every kill: the placement registry and the job table agree with the point
 * reached, and the tenant's data at each place is what that point implies.
 * - One tenant per store is killed at each point in turn: every run resumes where the previous one
 *   died and dies at the next point, so each point is both reached and resumed from. The last rerun
 *   finishes: exit 0, the data identical (checksum) at the destination, 0 left at the old place,
 *   the bystander tenant byte-identical, exactly one `placement_moved` event, the chain verifies.
 * - One fresh tenant per point before the switch: killed there, `--rollback` puts it back (data
 *   identical at the old place, nothing at the destination, one rollback event).
 * Every run is a real child process of the real bin (about 2 s of CPU each): 17 runs per store.
 */
import { createHash } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { verifyJsonl } from '@tenantscope/audit';
import { databaseUrl, pg, type TierTarget } from '@tenantscope/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.ts';
import { createMoveFixture, MOVE_SCHEMA, MOVE_TABLES, type MoveFixture } from './move-fixture.ts';

const SLOW = 300_000;
const NO_ANCHORS = { record: async () => {}, list: async () => [] };
const JOBS = 'tenantscope_cli.move_jobs';
const BYSTANDER = 'bystander';

/** Every kill point of `tenant move`, in the order a run passes them. */
const BEFORE_SWITCH = ['after-begin', 'after-copy', 'after-pause', 'after-fence'] as const;
const AFTER_SWITCH = ['after-switch', 'after-delete', 'after-record'] as const;
type Point = (typeof BEFORE_SWITCH)[number] | (typeof AFTER_SWITCH)[number];
type Store = 'postgres' | 's3';

/** What a kill at each point leaves: registry state, the open job, and the tenant's data at each place. */
const LEFT: Record<
  Point,
  { state: string; step: string; paused: boolean; switched: boolean; old: 'all' | 'none'; dest: 'all' | 'none' }
> = {
  'after-begin': { state: 'copying', step: 'moving', paused: false, switched: false, old: 'all', dest: 'none' },
  'after-copy': { state: 'copying', step: 'moving', paused: false, switched: false, old: 'all', dest: 'all' },
  'after-pause': { state: 'paused', step: 'moving', paused: true, switched: false, old: 'all', dest: 'all' },
  'after-fence': { state: 'paused', step: 'moving', paused: true, switched: false, old: 'all', dest: 'all' },
  'after-switch': { state: 'cleanup', step: 'moving', paused: true, switched: true, old: 'all', dest: 'all' },
  'after-delete': { state: 'cleanup', step: 'moving', paused: true, switched: true, old: 'none', dest: 'all' },
  'after-record': { state: 'cleanup', step: 'recording', paused: true, switched: true, old: 'none', dest: 'all' },
};

const TENANTS = [
  BYSTANDER,
  ...['pg', 's3'].flatMap((s) => [`${s}-chain`, ...BEFORE_SWITCH.map((p) => `${s}-rb-${p}`)]),
];
const SHARED: TierTarget = { tier: 'shared', target: null };

let fx: MoveFixture;

/** Order-independent checksum of a tenant's data at one place (rows or objects). */
const checksum = (m: Map<string, string>) =>
  createHash('sha256')
    .update(JSON.stringify([...m].sort(([a], [b]) => (a < b ? -1 : 1))))
    .digest('hex');

/** A tenant's data at a place, through the raw clients. */
function dataAt(store: Store, at: TierTarget, tenant: string): Promise<Map<string, string>> {
  if (store === 'postgres') return fx.rowsOf(at.target ?? fx.db.name, tenant);
  return fx.objectsOf(at.target ?? fx.shared, tenant);
}

async function registryRow(store: Store, tenant: string) {
  const r = await fx.su.query(
    `SELECT tier, target, state, other_tier, other_target FROM ${MOVE_SCHEMA}.placements WHERE tenant = $1 AND store = $2`,
    [tenant, store],
  );
  return r.rows[0] as Record<string, string | null> | undefined;
}

async function jobs(store: Store, tenant: string) {
  const r = await fx.su.query(
    `SELECT step, from_place, to_place, paused_at IS NOT NULL AS paused, switched_at IS NOT NULL AS switched,
            verified, record IS NOT NULL AS recorded
     FROM ${JOBS} WHERE tenant_id = $1 AND store = $2 ORDER BY started_at`,
    [tenant, store],
  );
  return r.rows as {
    step: string;
    from_place: TierTarget;
    to_place: TierTarget;
    paused: boolean;
    switched: boolean;
    verified: { total: number } | null;
    recorded: boolean;
  }[];
}

const eventsOf = async (tenant: string, type: string) =>
  (await fx.moveEvents(tenant)).filter((e) => e.event_type === type);

/** The registry and the job table after a kill at `point`, and the data at both places. */
async function expectKilledAt(
  store: Store,
  tenant: string,
  point: Point,
  dest: TierTarget,
  before: Map<string, string>,
  rollbacks: number,
): Promise<void> {
  const want = LEFT[point];
  const switched = want.state === 'cleanup';
  expect(await registryRow(store, tenant), `${point}: registry`).toEqual({
    tier: switched ? dest.tier : 'shared',
    target: switched ? dest.target : null,
    state: want.state,
    other_tier: switched ? 'shared' : dest.tier,
    other_target: switched ? null : dest.target,
  });
  const all = await jobs(store, tenant);
  const open = all.filter((j) => j.step === 'moving' || j.step === 'recording');
  expect(open, `${point}: one open job`).toHaveLength(1);
  expect(
    all.filter((j) => j.step === 'rolled_back'),
    `${point}: rolled-back jobs`,
  ).toHaveLength(rollbacks);
  const job = open[0] as (typeof open)[number];
  expect(
    { step: job.step, from: job.from_place, to: job.to_place, paused: job.paused, switched: job.switched },
    `${point}: job`,
  ).toEqual({ step: want.step, from: SHARED, to: dest, paused: want.paused, switched: want.switched });
  // Verified under the pause before the switch: the count the destination must hold.
  if (switched) expect(job.verified?.total, `${point}: verified`).toBe(before.size);
  expect(job.recorded, `${point}: record`).toBe(point === 'after-record');

  const old = await dataAt(store, SHARED, tenant);
  const there = await dataAt(store, dest, tenant);
  expect(old.size === 0 ? 'none' : checksum(old), `${point}: old place`).toBe(
    want.old === 'all' ? checksum(before) : 'none',
  );
  expect(there.size === 0 ? 'none' : checksum(there), `${point}: destination`).toBe(
    want.dest === 'all' ? checksum(before) : 'none',
  );
  // The record reaches the audit log only after the delete and recount; the kill after it left one.
  expect(await eventsOf(tenant, 'placement_moved'), `${point}: events`).toHaveLength(point === 'after-record' ? 1 : 0);
}

/** Rolled back: active on the shared tier, no open job, the data back where it was, none at `dest`, one more event. */
async function expectRolledBack(
  store: Store,
  tenant: string,
  dest: TierTarget,
  before: Map<string, string>,
  n: number,
): Promise<void> {
  expect(await registryRow(store, tenant)).toMatchObject({ tier: 'shared', target: null, state: 'active' });
  const all = await jobs(store, tenant);
  expect(all.map((j) => j.step)).toEqual(Array(n).fill('rolled_back'));
  expect(checksum(await dataAt(store, SHARED, tenant))).toBe(checksum(before));
  expect((await dataAt(store, dest, tenant)).size).toBe(0);
  expect(await eventsOf(tenant, 'placement_move_rolled_back')).toHaveLength(n);
  expect(await eventsOf(tenant, 'placement_moved')).toHaveLength(0);
}

/** Finished: active on `dest`, one job done, the data identical there, 0 at the old place, one record, the chain verifies. */
async function expectMoved(store: Store, tenant: string, dest: TierTarget, before: Map<string, string>) {
  expect(await registryRow(store, tenant)).toMatchObject({ tier: dest.tier, target: dest.target, state: 'active' });
  const all = await jobs(store, tenant);
  expect(all.filter((j) => j.step !== 'rolled_back').map((j) => j.step)).toEqual(['done']);
  const there = await dataAt(store, dest, tenant);
  expect(there.size).toBe(before.size);
  expect(checksum(there)).toBe(checksum(before));
  expect((await dataAt(store, SHARED, tenant)).size).toBe(0);
  const moved = await eventsOf(tenant, 'placement_moved');
  expect(moved).toHaveLength(1);
  expect(moved[0]).toMatchObject({ details: { store, old_after: 0, total: before.size } });
  expect((await verifyJsonl({ dir: fx.auditDir, tenant, anchors: NO_ANCHORS })).ok).toBe(true);
}

let bystander: { postgres: string; s3: string };

/** The bystander's data byte-identical; nothing but the tenant's own data at its destination. */
async function expectOthersUntouched(store: Store, tenant: string, dest: TierTarget): Promise<void> {
  expect(checksum(await dataAt(store, SHARED, BYSTANDER))).toBe(bystander[store]);
  if (store === 'postgres') {
    const c = new pg.Client({ connectionString: databaseUrl(fx.db.superUrl, dest.target as string) });
    await c.connect();
    try {
      for (const t of MOVE_TABLES) {
        const r = await c.query(`SELECT count(*)::int AS n FROM ${t} WHERE tenant_id IS DISTINCT FROM $1`, [tenant]);
        expect(r.rows[0].n, `${t}: rows of another tenant`).toBe(0);
      }
    } finally {
      await c.end();
    }
  } else {
    const r = await fx.s3.send(new ListObjectsV2Command({ Bucket: dest.target as string }));
    const keys = (r.Contents ?? []).map((o) => o.Key as string);
    expect(keys.filter((k) => !k.startsWith(`tenants/${tenant}/`))).toEqual([]);
  }
}

beforeAll(async () => {
  fx = await createMoveFixture('kill', TENANTS);
  await fx.seedRows(TENANTS, 8);
  await fx.seedObjects(TENANTS, 6);
  bystander = {
    postgres: checksum(await fx.rowsOf(fx.db.name, BYSTANDER)),
    s3: checksum(await fx.objectsOf(fx.shared, BYSTANDER)),
  };
  // The CLI creates its job table on first use: once here, so the concurrent runs below do not race for it.
  const warm = await runCli(fx.mv(BYSTANDER, 'postgres', 'shared', undefined, '--rollback'));
  expect(warm.code, warm.stderr).toBe(0);
}, SLOW);
afterAll(async () => {
  await fx?.close();
});

for (const store of ['postgres', 's3'] as const) {
  const prefix = store === 'postgres' ? 'pg' : 's3';
  const destination = async (label: string): Promise<TierTarget> => ({
    tier: 'dedicated',
    target: store === 'postgres' ? await fx.provision(`${fx.db.name}_${label}`) : await fx.bucket(`kill-${label}`),
  });

  describe.concurrent(`tenant move --store ${store} killed at every point`, () => {
    it(
      'killed at each point in turn (each run resumes where the last died): consistent after every kill; the last rerun finishes the move',
      async () => {
        const tenant = `${prefix}-chain`;
        const dest = await destination('chain');
        const before = await dataAt(store, SHARED, tenant);
        expect(before.size).toBeGreaterThan(0);
        const args = fx.mv(tenant, store, 'dedicated', dest.target as string, '--settle-ms', '50', '--json');
        for (const point of [...BEFORE_SWITCH, ...AFTER_SWITCH]) {
          const killed = await runCli(args, { TENANTSCOPE_TEST_KILL_AT: point });
          expect(killed.code, `${point}: ${killed.stderr}`).toBe(null);
          await expectKilledAt(store, tenant, point, dest, before, 0);
          if (point === 'after-switch') {
            const rb = await runCli([...args, '--rollback']);
            expect(rb.code, rb.stderr).toBe(2);
            expect(rb.stderr).toContain('already switched');
            await expectKilledAt(store, tenant, point, dest, before, 0);
          }
        }
        const done = await runCli(args);
        expect(done.code, done.stderr).toBe(0);
        // The record was written before the last kill: the rerun finds it and does not write it again.
        expect(JSON.parse(done.stdout)).toMatchObject({ status: 'moved', recordWritten: false });
        await expectMoved(store, tenant, dest, before);
        await expectOthersUntouched(store, tenant, dest);
      },
      SLOW,
    );

    for (const point of BEFORE_SWITCH) {
      it(
        `${point}: consistent after the kill; --rollback restores the tenant at the old place`,
        async () => {
          const tenant = `${prefix}-rb-${point}`;
          const dest = await destination(point.replace('after-', 'rb'));
          const before = await dataAt(store, SHARED, tenant);
          expect(before.size).toBeGreaterThan(0);
          const args = fx.mv(tenant, store, 'dedicated', dest.target as string, '--settle-ms', '50', '--json');
          const killed = await runCli(args, { TENANTSCOPE_TEST_KILL_AT: point });
          expect(killed.code, `${point}: ${killed.stderr}`).toBe(null);
          await expectKilledAt(store, tenant, point, dest, before, 0);
          const rb = await runCli([...args, '--rollback']);
          expect(rb.code, rb.stderr).toBe(0);
          expect(JSON.parse(rb.stdout).status).toBe('rolled-back');
          await expectRolledBack(store, tenant, dest, before, 1);
          expect(checksum(await dataAt(store, SHARED, BYSTANDER))).toBe(bystander[store]);
        },
        SLOW,
      );
    }
  });
}
