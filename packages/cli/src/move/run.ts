/**
 * `tenantscope tenant move`: the steps, resumable. The placement registry holds the move's state
 * (copying → paused → cleanup → active) and a job row in Postgres holds the run's record, so a
 * run killed at any point is finished by the next (or rolled back with `--rollback`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { argsHash, isTenantScopeError } from '@tenantscope/core';
import {
  type PlacementEntry,
  type PlacementRegistry,
  type PlacementStore,
  quoteIdent,
  type TierTarget,
} from '@tenantscope/postgres';
import { type Stores, writeOperatorEvent } from '../dsar/stores.ts';
import { cliError } from '../errors.ts';

export const MOVE_EVENT = 'placement_moved';
export const ROLLBACK_EVENT = 'placement_move_rolled_back';

/** A store's count and checksum of one tenant's data at one place, per part (table, `objects`). */
export interface Measure {
  total: number;
  parts: Record<string, { n: number; sum: string }>;
}

/** What `tenant move` needs of a store. Every method is idempotent. */
export interface StoreMover {
  readonly store: PlacementStore;
  /** Count and checksum of the tenant's data at `at`. */
  measure(at: TierTarget): Promise<Measure>;
  /** Makes the tenant's data at `to` identical to that at `from` (copies what differs, removes extras). */
  copy(from: TierTarget, to: TierTarget): Promise<void>;
  /** Deletes the tenant's data at `at`. */
  wipe(at: TierTarget): Promise<void>;
  /**
   * Makes the store itself refuse the tenant's writes at `at` (the place it is leaving), then waits
   * for the writes already admitted there to finish. After it returns, no write of the tenant can
   * land at `at`, however late its caller resolved the placement: the copy under the pause is final.
   * Idempotent. Stores without it rely on `settleMs` alone.
   */
  fence?(at: TierTarget): Promise<void>;
  /** Lifts a fence left at `at` (by a move away from it, or by this one before a rollback). Idempotent. */
  unfence?(at: TierTarget): Promise<void>;
  close(): Promise<void>;
}

export interface MoveOptions {
  to: TierTarget;
  /**
   * After pausing, how long to wait before the final copy and check: long enough for every
   * process's cached placement to expire (its registry `cacheMs`, when it does not LISTEN) and
   * for calls that resolved the old placement just before the pause to finish.
   */
  settleMs: number;
  rollback: boolean;
}

export interface MoveRecord {
  format: 'tenantscope-move-record/1';
  job_id: string;
  tenant: string;
  store: PlacementStore;
  from: TierTarget;
  to: TierTarget;
  started_at: string;
  /** When the tenant's calls in this store were paused, and when they resumed on the new place. */
  paused_at: string;
  switched_at: string;
  completed_at: string;
  /** Count and checksum, equal on both sides, taken under the pause. */
  verified: Measure;
  /** The recount of the old place after its deletion (always 0). */
  old_after: number;
}

export interface MoveOutcome {
  tenant: string;
  store: PlacementStore;
  status: 'moved' | 'already-there' | 'rolled-back' | 'nothing-to-roll-back';
  from?: TierTarget;
  to: TierTarget;
  record?: MoveRecord;
  /** True when this run wrote the record to the audit log (false: an earlier run had). */
  recordWritten?: boolean;
}

/** Test hook: `TENANTSCOPE_TEST_KILL_AT=<point>` kills the process (SIGKILL) at that point. */
function killPoint(point: string): void {
  if (process.env.TENANTSCOPE_TEST_KILL_AT === point) process.kill(process.pid, 'SIGKILL');
}

const same = (a: TierTarget | null | undefined, b: TierTarget) => !!a && a.tier === b.tier && a.target === b.target;
const label = (t: TierTarget) => (t.target ? `${t.tier}:${t.target}` : t.tier);
const sameMeasure = (a: Measure, b: Measure) => JSON.stringify(a) === JSON.stringify(b);

interface JobRow {
  id: string;
  step: 'moving' | 'recording' | 'done' | 'rolled_back';
  from_place: TierTarget;
  to_place: TierTarget;
  started_at: Date;
  paused_at: Date | null;
  switched_at: Date | null;
  verified: Measure | null;
  record: MoveRecord | null;
}

async function jobTable(s: Stores): Promise<string> {
  const schema = quoteIdent(s.cfg.postgres.jobSchema, 'jobSchema');
  await s.admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await s.admin.query(`CREATE TABLE IF NOT EXISTS ${schema}.move_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id text NOT NULL,
    store text NOT NULL,
    step text NOT NULL CHECK (step IN ('moving', 'recording', 'done', 'rolled_back')),
    from_place jsonb NOT NULL,
    to_place jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    paused_at timestamptz,
    switched_at timestamptz,
    verified jsonb,
    record jsonb,
    finished_at timestamptz
  )`);
  await s.admin.query(
    `CREATE UNIQUE INDEX IF NOT EXISTS move_jobs_open ON ${schema}.move_jobs (tenant_id, store) WHERE step IN ('moving', 'recording')`,
  );
  return `${schema}.move_jobs`;
}

/** Registry errors as CLI errors: a conflicting move is the user's (exit 2), the rest the store's (exit 3). */
async function reg<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isTenantScopeError(err)) throw err;
    if (err.code === 'PLACEMENT_MOVE_CONFLICT' || err.code === 'PLACEMENT_INVALID') {
      throw cliError('CLI_USAGE', `${what}: ${err.message}`, { cause: err });
    }
    if (err.code.startsWith('PLACEMENT_'))
      throw cliError('CLI_STORE_FAILED', `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

async function store<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isTenantScopeError(err) && err.code.startsWith('CLI_')) throw err;
    throw cliError('CLI_STORE_FAILED', `${what} failed (${(err as Error).message}); rerun to resume`, { cause: err });
  }
}

/**
 * Moves one tenant's data in one store to `options.to`: copy → verify (count + checksum) → pause
 * the tenant's calls in that store → copy what raced the first copy and verify again → switch →
 * delete the old copy and recount it to 0 → a hash-chained audit event (once) → done.
 */
export async function moveTenant(
  s: Stores,
  registry: PlacementRegistry,
  mover: StoreMover,
  tenant: string,
  options: MoveOptions,
): Promise<MoveOutcome> {
  const st = mover.store;
  const table = await jobTable(s);
  const openJob = async () =>
    (
      await s.admin.query<JobRow>(
        `SELECT * FROM ${table} WHERE tenant_id = $1 AND store = $2 AND step IN ('moving', 'recording')`,
        [tenant, st],
      )
    ).rows[0];
  let entry: PlacementEntry | undefined = await reg('registry', () => registry.get(tenant, st));
  let job = await openJob();
  const here: TierTarget = entry ? { tier: entry.tier, target: entry.target } : { tier: 'shared', target: null };
  const state = entry?.state ?? 'active';

  if (options.rollback) return rollback(s, registry, mover, tenant, entry, job, table);
  if (state === 'active' && job?.step === 'moving') {
    // The registry says no move (it was aborted outside this command): that job is over.
    await s.admin.query(`UPDATE ${table} SET step = 'rolled_back', finished_at = now() WHERE id = $1`, [job.id]);
    job = undefined;
  }

  if (state === 'active' && !job) {
    if (same(here, options.to)) {
      const last = (
        await s.admin.query<JobRow>(
          `SELECT * FROM ${table} WHERE tenant_id = $1 AND store = $2 AND step = 'done' ORDER BY finished_at DESC LIMIT 1`,
          [tenant, st],
        )
      ).rows[0];
      return {
        tenant,
        store: st,
        status: 'already-there',
        to: options.to,
        ...(last?.record ? { record: last.record, recordWritten: false } : {}),
      };
    }
    // The destination must be usable (exists, the tables there, row-level security on) before anything changes.
    await store('check the destination', () => mover.measure(options.to));
    job = (
      await s.admin.query<JobRow>(
        `INSERT INTO ${table} (tenant_id, store, step, from_place, to_place) VALUES ($1, $2, 'moving', $3, $4)
         ON CONFLICT (tenant_id, store) WHERE step IN ('moving', 'recording') DO NOTHING RETURNING *`,
        [tenant, st, JSON.stringify(here), JSON.stringify(options.to)],
      )
    ).rows[0];
    if (!job) throw cliError('CLI_USAGE', 'another move of this tenant started at the same time');
    entry = await reg('begin', () => registry.beginMove(tenant, st, options.to));
  } else {
    // A move in progress (this run resumes it): it must be the same one.
    const dest = state === 'cleanup' || state === 'active' ? here : (entry?.other ?? null);
    const to = job?.to_place ?? dest;
    if (!same(to, options.to)) {
      throw cliError(
        'CLI_USAGE',
        `a move of this tenant in ${st} to ${to ? label(to) : 'another place'} is unfinished: rerun with that destination, or with --rollback`,
      );
    }
    if (!job) {
      const from = state === 'cleanup' ? (entry?.other as TierTarget) : here;
      job = (
        await s.admin.query<JobRow>(
          `INSERT INTO ${table} (tenant_id, store, step, from_place, to_place) VALUES ($1, $2, 'moving', $3, $4) RETURNING *`,
          [tenant, st, JSON.stringify(from), JSON.stringify(options.to)],
        )
      ).rows[0] as JobRow;
    }
  }
  const from = job.from_place;
  const to = job.to_place;
  killPoint('after-begin');

  if (entry?.state === 'copying') {
    await store('copy', () => mover.copy(from, to));
    killPoint('after-copy');
    entry = await reg('pause', () => registry.pause(tenant, st));
    job = (await s.admin.query<JobRow>(`UPDATE ${table} SET paused_at = now() WHERE id = $1 RETURNING *`, [job.id]))
      .rows[0] as JobRow;
    killPoint('after-pause');
  }
  if (entry?.state === 'paused') {
    // The old place refuses the tenant's writes and the admitted ones finish; every process's cached
    // placement expires.
    const fence = mover.fence?.bind(mover);
    if (fence) await store('fence the old place', () => fence(from));
    killPoint('after-fence');
    await sleep(options.settleMs);
    const both = () => store('count', () => Promise.all([mover.measure(from), mover.measure(to)]));
    let [a, b] = await both();
    if (!sameMeasure(a, b)) {
      // Writes that raced the first copy: copied again, under the pause.
      await store('copy', () => mover.copy(from, to));
      [a, b] = await both();
    }
    if (!sameMeasure(a, b)) {
      await unfence(mover, from);
      await reg('rollback', () => registry.abortMove(tenant, st));
      await store('delete new copy', () => mover.wipe(to));
      await s.admin.query(`UPDATE ${table} SET step = 'rolled_back', finished_at = now() WHERE id = $1`, [job.id]);
      throw cliError(
        'CLI_STORE_FAILED',
        `${st}: the copy does not match under the pause (count/checksum); rolled back, the tenant stays on ${label(from)}`,
      );
    }
    job = (
      await s.admin.query<JobRow>(`UPDATE ${table} SET verified = $2 WHERE id = $1 RETURNING *`, [
        job.id,
        JSON.stringify(a),
      ])
    ).rows[0] as JobRow;
    await unfence(mover, to);
    entry = await reg('switch', () => registry.switchPlacement(tenant, st));
    job = (await s.admin.query<JobRow>(`UPDATE ${table} SET switched_at = now() WHERE id = $1 RETURNING *`, [job.id]))
      .rows[0] as JobRow;
    killPoint('after-switch');
  }
  if (entry?.state === 'cleanup' && job.step === 'moving') {
    await store('delete old copy', () => mover.wipe(from));
    const left = await store('recount', () => mover.measure(from));
    if (left.total !== 0) {
      throw cliError('CLI_STORE_FAILED', `${st}: the old place still counts ${left.total} after the delete; rerun`);
    }
    killPoint('after-delete');
    const now = new Date().toISOString();
    const record: MoveRecord = {
      format: 'tenantscope-move-record/1',
      job_id: job.id,
      tenant,
      store: st,
      from,
      to,
      started_at: new Date(job.started_at).toISOString(),
      paused_at: new Date(job.paused_at ?? now).toISOString(),
      switched_at: new Date(job.switched_at ?? now).toISOString(),
      completed_at: now,
      verified: job.verified ?? (await mover.measure(to)),
      old_after: left.total,
    };
    job = (
      await s.admin.query<JobRow>(`UPDATE ${table} SET step = 'recording', record = $2 WHERE id = $1 RETURNING *`, [
        job.id,
        JSON.stringify(record),
      ])
    ).rows[0] as JobRow;
  }
  const record = job.record as MoveRecord;
  const written = await writeOnce(s, tenant, MOVE_EVENT, record, {
    job_id: record.job_id,
    store: st,
    from: label(record.from),
    to: label(record.to),
    total: record.verified.total,
    old_after: record.old_after,
    ...Object.fromEntries(Object.entries(record.verified.parts).map(([p, m]) => [`${p}.rows`, m.n])),
  });
  killPoint('after-record');
  if (entry?.state === 'cleanup') await reg('finish', () => registry.finishMove(tenant, st));
  await s.admin.query(`UPDATE ${table} SET step = 'done', finished_at = now() WHERE id = $1`, [job.id]);
  return { tenant, store: st, status: 'moved', from, to, record, recordWritten: written };
}

/** Lifts a fence at `at` when the store has fences (a place the tenant is about to use again). */
async function unfence(mover: StoreMover, at: TierTarget): Promise<void> {
  const lift = mover.unfence?.bind(mover);
  if (lift) await store('lift the fence', () => lift(at));
}

/** The event goes into the tenant's hash-chained audit stream unless it is already there. */
async function writeOnce(
  s: Stores,
  tenant: string,
  type: string,
  payload: unknown,
  details: Record<string, string | number>,
): Promise<boolean> {
  const hash = argsHash(payload);
  if (await s.audit.hasEvent(tenant, type, hash)) return false;
  await writeOperatorEvent(s, tenant, type, hash, details);
  return true;
}

async function rollback(
  s: Stores,
  registry: PlacementRegistry,
  mover: StoreMover,
  tenant: string,
  entry: PlacementEntry | undefined,
  job: JobRow | undefined,
  table: string,
): Promise<MoveOutcome> {
  const st = mover.store;
  const here: TierTarget = entry ? { tier: entry.tier, target: entry.target } : { tier: 'shared', target: null };
  if (!entry || entry.state === 'active') {
    if (job)
      await s.admin.query(`UPDATE ${table} SET step = 'rolled_back', finished_at = now() WHERE id = $1`, [job.id]);
    return { tenant, store: st, status: 'nothing-to-roll-back', to: here };
  }
  if (entry.state === 'cleanup') {
    throw cliError('CLI_USAGE', `${st}: the move already switched; rerun without --rollback to finish it`);
  }
  const dest = entry.other as TierTarget;
  await unfence(mover, here);
  await reg('rollback', () => registry.abortMove(tenant, st));
  await store('delete new copy', () => mover.wipe(dest));
  const left = await store('recount', () => mover.measure(dest));
  if (left.total !== 0) throw cliError('CLI_STORE_FAILED', `${st}: the new copy still counts ${left.total}; rerun`);
  const id = job?.id ?? 'none';
  if (job) await s.admin.query(`UPDATE ${table} SET step = 'rolled_back', finished_at = now() WHERE id = $1`, [job.id]);
  await writeOnce(
    s,
    tenant,
    ROLLBACK_EVENT,
    { job_id: id, store: st, from: here, to: dest, at: entry.version },
    { job_id: id, store: st, stays: label(here), abandoned: label(dest) },
  );
  return { tenant, store: st, status: 'rolled-back', from: here, to: dest };
}
