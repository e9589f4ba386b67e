import { createHmac, type KeyObject } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { quoteIdent } from '@tenantscope/postgres';
import { VERSION } from '../check/run.ts';
import { cliError } from '../errors.ts';
import type { DsarConfig } from './config.ts';
import {
  EXPORT_FORMAT,
  type FileEntry,
  HashedFile,
  readSigningKey,
  type SignedManifest,
  writeSignedManifest,
} from './export.ts';
import { assertPlacementsUnchanged, type Placements, placedStores } from './placement.ts';
import { type Stores, writeOperatorEvent } from './stores.ts';
import { subjectStores } from './subject-stores.ts';

/** Keyed hash of a subject id, as recorded in the audit log and manifests (never the id). */
export function subjectHash(cfg: DsarConfig, tenant: string, subject: string): string {
  const key = process.env[cfg.subjectHashKeyEnv];
  if (!key || key.length < 32) {
    throw cliError(
      'CLI_CONFIG_INVALID',
      `dsar.subjectHashKeyEnv: ${cfg.subjectHashKeyEnv} must hold a key of 32+ characters`,
    );
  }
  return `hmac-sha256:${createHmac('sha256', key).update(`${tenant}\0${subject}`).digest('hex')}`;
}

const subjectTables = (cfg: DsarConfig) => cfg.postgres.tables.filter((t) => t.subjectColumn);
const PAGE = 1000;

export interface SubjectExport {
  dir: string;
  manifest: SignedManifest;
}

/**
 * The subject's rows in every table with a `subjectColumn`, in one read-only snapshot, paged
 * (memory bounded by the page), into `postgres/<table>.ndjson` with a signed manifest. A subject
 * with no rows is unknown (exit 2, nothing written).
 */
export async function exportSubject(
  stores: Stores,
  tenantId: string,
  subject: string,
  out: string,
): Promise<SubjectExport> {
  // Every store where the tenant is placed now; refused (nothing written) while a move is unfinished.
  const s = await placedStores(stores, tenantId);
  const hash = subjectHash(s.cfg, tenantId, subject);
  const key: KeyObject = await readSigningKey(s.cfg.signingKey);
  const tables = subjectTables(s.cfg);
  const started = new Date().toISOString();
  const tenant = await s.tenant(tenantId);
  const others = subjectStores(s, tenant, subject);
  if (tables.length === 0 && others.length === 0) throw noSubjectConfig();
  const files: Record<string, FileEntry> = {};
  const counts: Record<string, Record<string, number>> = {};
  await s.scoped.forTenant(tenant).transaction(
    async (tx) => {
      const found = await countSubject(tx, s.cfg, subject);
      const elsewhere = await Promise.all(others.map((o) => o.count()));
      if ([...Object.values(found), ...elsewhere].every((n) => n === 0)) {
        throw cliError('CLI_UNKNOWN_TENANT', `no data for this subject in tenant ${tenantId}; nothing written`);
      }
      await mkdir(out, { recursive: true });
      if ((await readdir(out)).length > 0) throw cliError('CLI_USAGE', `--out ${out}: not empty`);
      if (tables.length > 0) {
        await mkdir(join(out, 'postgres'));
        counts.postgres = {};
      }
      for (const t of tables) {
        const name = `postgres/${t.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.ndjson`;
        const f = new HashedFile(join(out, name));
        let n = 0;
        for (let offset = 0; ; offset += PAGE) {
          const r = await tx.query(
            `SELECT * FROM ${quoteIdent(t.name, 'table')} WHERE ${quoteIdent(t.subjectColumn as string, 'column')} = $1 ORDER BY ctid LIMIT ${PAGE} OFFSET ${offset}`,
            [subject],
          );
          for (const row of r.rows) await f.write(`${JSON.stringify(row)}\n`);
          n += r.rows.length;
          if (r.rows.length < PAGE) break;
        }
        files[name] = await f.close();
        (counts.postgres as Record<string, number>)[t.name] = n;
      }
      for (const o of others) {
        await mkdir(join(out, o.store), { recursive: true });
        counts[o.store] = { [o.part]: await o.export(out, files) };
      }
    },
    { readOnly: true, isolation: 'repeatable read' },
  );
  await assertPlacementsUnchanged(s, tenantId, s.placements);
  await auditSubject(s, tenantId, 'dsar_subject_export', hash, counts);
  const manifest = await writeSignedManifest(out, key, {
    format: EXPORT_FORMAT,
    tool: { name: '@tenantscope/cli', version: VERSION },
    tenant: tenantId,
    subject_hash: hash,
    started_at: started,
    finished_at: new Date().toISOString(),
    counts,
    placement: s.placements,
    files,
  });
  return { dir: out, manifest };
}

const noSubjectConfig = () =>
  cliError(
    'CLI_CONFIG_INVALID',
    'dsar: no store locates a subject (a postgres table subjectColumn, s3.subject, qdrant.subjectKey or secrets.subjectNames)',
  );

async function countSubject(
  tx: { query<R extends Record<string, unknown>>(sql: string, p?: unknown[]): Promise<{ rows: R[] }> },
  cfg: DsarConfig,
  subject: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of subjectTables(cfg)) {
    const r = await tx.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${quoteIdent(t.name, 'table')} WHERE ${quoteIdent(t.subjectColumn as string, 'column')} = $1`,
      [subject],
    );
    out[t.name] = Number(r.rows[0]?.n ?? 0);
  }
  return out;
}

async function auditSubject(
  s: Stores,
  tenantId: string,
  type: string,
  hash: string,
  counts: Record<string, Record<string, number>>,
): Promise<void> {
  const details: Record<string, string | number> = { subject_hash: hash };
  for (const [store, parts] of Object.entries(counts)) {
    for (const [part, n] of Object.entries(parts)) details[`${store}.${part}`] = n;
  }
  await writeOperatorEvent(s, tenantId, type, null, details);
}

export interface SubjectErasure {
  tenant: string;
  subject_hash: string;
  /** Per table: rows deleted or pseudonymised. */
  postgres: Record<string, { action: 'delete' | 'pseudonymise'; rows: number }>;
  /** Per other store the config locates subjects in: items deleted (objects, points, secret names). */
  stores: Record<string, { deleted: number }>;
  /** Per store, where the subject was erased: `{ tier, target }` from the placement registry. */
  placement: Placements;
}

/**
 * Deletes or pseudonymises (per table, per config) the subject's rows in one transaction; the
 * audit event (keyed hash of the subject id, counts) is written before COMMIT, so a failed audit
 * write erases nothing. A subject with no rows is unknown (exit 2, nothing touched).
 */
export async function eraseSubject(stores: Stores, tenantId: string, subject: string): Promise<SubjectErasure> {
  // Every store where the tenant is placed now; refused (nothing touched) while a move is unfinished.
  const s = await placedStores(stores, tenantId);
  const hash = subjectHash(s.cfg, tenantId, subject);
  const tables = subjectTables(s.cfg);
  const tenant = await s.tenant(tenantId);
  const others = subjectStores(s, tenant, subject);
  if (tables.length === 0 && others.length === 0) throw noSubjectConfig();
  return s.scoped.forTenant(tenant).transaction(async (tx) => {
    const found = await countSubject(tx, s.cfg, subject);
    const elsewhere = await Promise.all(others.map((o) => o.count()));
    if ([...Object.values(found), ...elsewhere].every((n) => n === 0)) {
      throw cliError('CLI_UNKNOWN_TENANT', `no data for this subject in tenant ${tenantId}; nothing changed`);
    }
    const result: SubjectErasure = {
      tenant: tenantId,
      subject_hash: hash,
      postgres: {},
      stores: {},
      placement: s.placements,
    };
    for (const t of tables) {
      const table = quoteIdent(t.name, 'table');
      const col = quoteIdent(t.subjectColumn as string, 'column');
      if (t.erase === 'delete') {
        const r = await tx.query(`DELETE FROM ${table} WHERE ${col} = $1`, [subject]);
        result.postgres[t.name] = { action: 'delete', rows: r.rowCount ?? 0 };
      } else {
        const entries = Object.entries(t.erase.pseudonymise);
        const sets = entries.map(([c], i) => `${quoteIdent(c, 'column')} = $${i + 2}`).join(', ');
        const r = await tx.query(`UPDATE ${table} SET ${sets} WHERE ${col} = $1`, [
          subject,
          ...entries.map(([, v]) => v),
        ]);
        result.postgres[t.name] = { action: 'pseudonymise', rows: r.rowCount ?? 0 };
      }
    }
    // The other stores, inside the Postgres transaction: a failure there rolls the rows back and a
    // rerun finishes the job (each store's erase is idempotent). Each must then count 0.
    for (const o of others) {
      let deleted: number;
      try {
        deleted = await o.erase();
      } catch (err) {
        throw cliError('CLI_STORE_FAILED', `${o.store}: erase failed (${(err as Error).message}); rerun to resume`, {
          cause: err,
        });
      }
      if ((await o.count()) !== 0) {
        throw cliError('CLI_STORE_FAILED', `${o.store}: the subject's data is still there after erase; rerun`);
      }
      result.stores[o.store] = { deleted };
    }
    // Before COMMIT: no audit, no erasure.
    const counts: Record<string, Record<string, number>> = {};
    if (tables.length > 0) {
      counts.postgres = Object.fromEntries(Object.entries(result.postgres).map(([t, r]) => [t, r.rows]));
    }
    for (const o of others) counts[o.store] = { [o.part]: result.stores[o.store]?.deleted ?? 0 };
    await auditSubject(s, tenantId, 'dsar_subject_erase', hash, counts);
    return result;
  });
}
