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
import { type Stores, writeOperatorEvent } from './stores.ts';

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
export async function exportSubject(s: Stores, tenantId: string, subject: string, out: string): Promise<SubjectExport> {
  const hash = subjectHash(s.cfg, tenantId, subject);
  const key: KeyObject = await readSigningKey(s.cfg.signingKey);
  const tables = subjectTables(s.cfg);
  if (tables.length === 0) throw cliError('CLI_CONFIG_INVALID', 'dsar.postgres.tables: no table has a subjectColumn');
  const started = new Date().toISOString();
  const tenant = await s.tenant(tenantId);
  const files: Record<string, FileEntry> = {};
  const counts: Record<string, number> = {};
  await s.scoped.forTenant(tenant).transaction(
    async (tx) => {
      const found = await countSubject(tx, s.cfg, subject);
      if (Object.values(found).every((n) => n === 0)) {
        throw cliError('CLI_UNKNOWN_TENANT', `no data for this subject in tenant ${tenantId}; nothing written`);
      }
      await mkdir(join(out, 'postgres'), { recursive: true });
      if ((await readdir(out)).some((f) => f !== 'postgres')) throw cliError('CLI_USAGE', `--out ${out}: not empty`);
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
        counts[t.name] = n;
      }
    },
    { readOnly: true, isolation: 'repeatable read' },
  );
  await auditSubject(s, tenantId, 'dsar_subject_export', hash, counts);
  const manifest = await writeSignedManifest(out, key, {
    format: EXPORT_FORMAT,
    tool: { name: '@tenantscope/cli', version: VERSION },
    tenant: tenantId,
    subject_hash: hash,
    started_at: started,
    finished_at: new Date().toISOString(),
    counts: { postgres: counts },
    files,
  });
  return { dir: out, manifest };
}

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
  counts: Record<string, number>,
): Promise<void> {
  const details: Record<string, string | number> = { subject_hash: hash };
  for (const [t, n] of Object.entries(counts)) details[`postgres.${t}`] = n;
  await writeOperatorEvent(s, tenantId, type, null, details);
}

export interface SubjectErasure {
  tenant: string;
  subject_hash: string;
  /** Per table: rows deleted or pseudonymised. */
  postgres: Record<string, { action: 'delete' | 'pseudonymise'; rows: number }>;
}

/**
 * Deletes or pseudonymises (per table, per config) the subject's rows in one transaction; the
 * audit event (keyed hash of the subject id, counts) is written before COMMIT, so a failed audit
 * write erases nothing. A subject with no rows is unknown (exit 2, nothing touched).
 */
export async function eraseSubject(s: Stores, tenantId: string, subject: string): Promise<SubjectErasure> {
  const hash = subjectHash(s.cfg, tenantId, subject);
  const tables = subjectTables(s.cfg);
  if (tables.length === 0) throw cliError('CLI_CONFIG_INVALID', 'dsar.postgres.tables: no table has a subjectColumn');
  const tenant = await s.tenant(tenantId);
  return s.scoped.forTenant(tenant).transaction(async (tx) => {
    const found = await countSubject(tx, s.cfg, subject);
    if (Object.values(found).every((n) => n === 0)) {
      throw cliError('CLI_UNKNOWN_TENANT', `no data for this subject in tenant ${tenantId}; nothing changed`);
    }
    const result: SubjectErasure = { tenant: tenantId, subject_hash: hash, postgres: {} };
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
    // Before COMMIT: no audit, no erasure.
    await auditSubject(
      s,
      tenantId,
      'dsar_subject_erase',
      hash,
      Object.fromEntries(Object.entries(result.postgres).map(([t, r]) => [t, r.rows])),
    );
    return result;
  });
}
