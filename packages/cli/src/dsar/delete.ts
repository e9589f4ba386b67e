import { argsHash } from '@tenantscope/core';
import { quoteIdent } from '@tenantscope/postgres';
import { cliError } from '../errors.ts';
import { assertPlacementsUnchanged, type Placements, placedStores } from './placement.ts';
import { type Stores, writeOperatorEvent } from './stores.ts';

export const CERTIFICATE_EVENT = 'dsar_deletion_certificate';

export interface StoreCounts {
  [store: string]: Record<string, number>;
  postgres: Record<string, number>;
}

export interface DeletionCertificate {
  format: 'tenantscope-deletion-certificate/1';
  job_id: string;
  tenant: string;
  /** When the job started and the first count was taken. */
  started_at: string;
  /** When the recount found nothing left. */
  completed_at: string;
  /** Per store, per table (Postgres) or `objects` (S3): the count before and after. */
  stores: Record<string, Record<string, { before: number; after: number }>>;
  /** Per store, where it was counted and deleted: `{ tier, target }` from the placement registry. */
  placement?: Placements;
}

export interface DeleteOutcome {
  dryRun: boolean;
  counts: StoreCounts;
  /** Per store, where the counts were taken (the tenant's placement). */
  placements: Placements;
  certificate?: DeletionCertificate;
  /** True when this run wrote the certificate (false: an earlier run had). */
  certificateWritten?: boolean;
}

/** Test hook: `TENANTSCOPE_TEST_KILL_AT=<point>` kills the process (SIGKILL) at that point. */
function killPoint(point: string): void {
  if (process.env.TENANTSCOPE_TEST_KILL_AT === point) process.kill(process.pid, 'SIGKILL');
}

export async function countAll(s: Stores, tenantId: string): Promise<StoreCounts> {
  const tenant = await s.tenant(tenantId);
  try {
    const out: StoreCounts = { postgres: await s.postgres.count(tenant) };
    if (s.s3) out.s3 = { objects: (await s.s3.tenantData(tenantId).count()).objects };
    if (s.qdrant) out.qdrant = { points: (await s.qdrant.tenantData(tenant).count()).total };
    if (s.secrets) out.secrets = { names: (await s.secrets.exportTenant(tenant)).secrets.length };
    return out;
  } catch (err) {
    throw cliError('CLI_STORE_FAILED', `count failed (${(err as Error).message})`, { cause: err });
  }
}

const total = (c: StoreCounts) =>
  Object.values(c)
    .flatMap((items) => Object.values(items))
    .reduce((a, b) => a + b, 0);

interface JobRow {
  id: string;
  state: 'deleting' | 'certifying' | 'done';
  before: StoreCounts;
  started_at: Date;
  certificate: DeletionCertificate | null;
  /** Where `before` was counted (null: a job of a CLI that did not follow placements, i.e. shared). */
  placement: Placements | null;
}

async function jobTable(s: Stores): Promise<string> {
  const schema = quoteIdent(s.cfg.postgres.jobSchema, 'jobSchema');
  await s.admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await s.admin.query(`CREATE TABLE IF NOT EXISTS ${schema}.deletion_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('deleting', 'certifying', 'done')),
    before jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    certificate jsonb,
    finished_at timestamptz
  )`);
  // At most one unfinished job per tenant: a rerun resumes it instead of starting another.
  await s.admin.query(
    `CREATE UNIQUE INDEX IF NOT EXISTS deletion_jobs_open ON ${schema}.deletion_jobs (tenant_id) WHERE state <> 'done'`,
  );
  await s.admin.query(`ALTER TABLE ${schema}.deletion_jobs ADD COLUMN IF NOT EXISTS placement jsonb`);
  return `${schema}.deletion_jobs`;
}

/**
 * A resumed job whose first count was taken at another place in some store (the tenant moved since,
 * or the job was started by a CLI that did not follow placements): the count there says nothing
 * about the tenant's data here, so that store's `before` is counted again here (nothing of this
 * place was deleted by that job: it worked elsewhere).
 */
async function recountMoved(
  s: Stores,
  table: string,
  job: JobRow,
  tenantId: string,
  placements: Placements,
): Promise<JobRow> {
  const was = (store: string) => JSON.stringify(job.placement?.[store] ?? { tier: 'shared', target: null });
  const moved = Object.keys(placements).filter((st) => was(st) !== JSON.stringify(placements[st]));
  if (moved.length === 0) return job;
  const now = await countAll(s, tenantId);
  const before: StoreCounts = { ...job.before };
  for (const st of moved) if (now[st]) before[st] = now[st];
  return (
    await s.admin.query<JobRow>(`UPDATE ${table} SET before = $2, placement = $3 WHERE id = $1 RETURNING *`, [
      job.id,
      JSON.stringify(before),
      JSON.stringify(placements),
    ])
  ).rows[0] as JobRow;
}

/**
 * Deletes a tenant in every store, resumably: a job record in Postgres holds the first count; each
 * store's delete is idempotent; the recount must be 0 everywhere; then the certificate is stored in
 * the job, written to the tenant's audit stream unless it is already there, and the job closed. A
 * run killed at any point is finished by the next, and the certificate is written once.
 */
export async function deleteTenant(stores: Stores, tenantId: string, confirm: boolean): Promise<DeleteOutcome> {
  // Every store where the tenant is placed now; refused (nothing touched) while a move is unfinished.
  const s = await placedStores(stores, tenantId);
  const { placements } = s;
  if (!confirm) return { dryRun: true, counts: await countAll(s, tenantId), placements };
  const table = await jobTable(s);
  let job = (await s.admin.query<JobRow>(`SELECT * FROM ${table} WHERE tenant_id = $1 AND state <> 'done'`, [tenantId]))
    .rows[0];
  if (!job) {
    const before = await countAll(s, tenantId);
    if (total(before) === 0) {
      const last = (
        await s.admin.query<JobRow>(
          `SELECT * FROM ${table} WHERE tenant_id = $1 AND state = 'done' ORDER BY finished_at DESC LIMIT 1`,
          [tenantId],
        )
      ).rows[0];
      // Already deleted: nothing to do, and no second certificate.
      if (last?.certificate)
        return { dryRun: false, counts: before, placements, certificate: last.certificate, certificateWritten: false };
    }
    job = (
      await s.admin.query<JobRow>(
        `INSERT INTO ${table} (tenant_id, state, before, placement) VALUES ($1, 'deleting', $2, $3)
         ON CONFLICT (tenant_id) WHERE state <> 'done' DO NOTHING RETURNING *`,
        [tenantId, JSON.stringify(before), JSON.stringify(placements)],
      )
    ).rows[0];
    if (!job) throw cliError('CLI_STORE_FAILED', 'another deletion of this tenant started at the same time; rerun');
  }
  if (job.state === 'deleting') job = await recountMoved(s, table, job, tenantId, placements);
  killPoint('after-job');

  if (job.state === 'deleting') {
    const tenant = await s.tenant(tenantId);
    try {
      await s.postgres.delete(tenant);
      killPoint('after-postgres');
      if (s.s3) await s.s3.tenantData(tenantId).deleteAll();
      if (s.qdrant) await s.qdrant.tenantData(tenant).delete();
      if (s.secrets) await s.secrets.deleteTenant(tenant);
    } catch (err) {
      throw cliError('CLI_STORE_FAILED', `delete failed (${(err as Error).message}); rerun to resume`, {
        cause: err,
      });
    }
    killPoint('after-delete');
    const after = await countAll(s, tenantId);
    if (total(after) !== 0) {
      throw cliError('CLI_STORE_FAILED', `recount after delete is not 0: ${JSON.stringify(after)}; rerun to resume`);
    }
    // The 0 was counted where the tenant still is: a move begun meanwhile would make it a lie.
    await assertPlacementsUnchanged(s, tenantId, placements);
    const stores: DeletionCertificate['stores'] = {};
    for (const [store, items] of Object.entries(job.before)) {
      const entry: Record<string, { before: number; after: number }> = {};
      for (const [t, n] of Object.entries(items)) entry[t] = { before: n, after: after[store]?.[t] ?? 0 };
      stores[store] = entry;
    }
    const certificate: DeletionCertificate = {
      format: 'tenantscope-deletion-certificate/1',
      job_id: job.id,
      tenant: tenantId,
      started_at: new Date(job.started_at).toISOString(),
      completed_at: new Date().toISOString(),
      stores,
      placement: placements,
    };
    job = (
      await s.admin.query<JobRow>(
        `UPDATE ${table} SET state = 'certifying', certificate = $2 WHERE id = $1 RETURNING *`,
        [job.id, JSON.stringify(certificate)],
      )
    ).rows[0] as JobRow;
  }
  const certificate = job.certificate as DeletionCertificate;
  const hash = argsHash(certificate);
  let written = false;
  if (!(await s.audit.hasEvent(tenantId, CERTIFICATE_EVENT, hash))) {
    const details: Record<string, number | string> = { job_id: certificate.job_id };
    for (const [store, items] of Object.entries(certificate.stores)) {
      for (const [t, c] of Object.entries(items)) {
        details[`${store}.${t}.before`] = c.before;
        details[`${store}.${t}.after`] = c.after;
      }
    }
    for (const [store, at] of Object.entries(certificate.placement ?? {})) {
      details[`${store}.placement`] = at.target ? `${at.tier}:${at.target}` : at.tier;
    }
    await writeOperatorEvent(s, tenantId, CERTIFICATE_EVENT, hash, details, certificate.completed_at);
    written = true;
  }
  killPoint('after-certificate');
  await s.admin.query(`UPDATE ${table} SET state = 'done', finished_at = now() WHERE id = $1`, [job.id]);
  return {
    dryRun: false,
    placements,
    counts: Object.fromEntries(
      Object.entries(certificate.stores).map(([store, items]) => [
        store,
        Object.fromEntries(Object.entries(items).map(([t, c]) => [t, c.after])),
      ]),
    ) as StoreCounts,
    certificate,
    certificateWritten: written,
  };
}
