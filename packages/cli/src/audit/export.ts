import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { streamName } from '@tenantscope/core';
import { VERSION } from '../check/run.ts';
import { EXPORT_FORMAT, type FileEntry, HashedFile, readSigningKey, writeSignedManifest } from '../dsar/export.ts';
import { cliError } from '../errors.ts';
import type { AuditBackend } from './backend.ts';

/**
 * Writes one stream's stored lines under `out/<sub>/` as `<day>.jsonl` files (the JSONL sink's
 * layout), streamed chunk by chunk. Returns the files (paths relative to `out`) and the line count.
 */
export async function exportAuditStream(
  audit: AuditBackend,
  tenant: string | null,
  out: string,
  sub: string,
): Promise<{ files: Record<string, FileEntry>; events: number }> {
  const files: Record<string, FileEntry> = {};
  await mkdir(join(out, sub), { recursive: true });
  let events = 0;
  let name: string | undefined;
  let f: HashedFile | undefined;
  try {
    for await (const c of audit.chunks(streamName({ tenant_id: tenant }))) {
      if (c.file !== name) {
        if (f && name) files[`${sub}/${name}`] = await f.close();
        name = c.file;
        f = new HashedFile(join(out, sub, name));
      }
      for (const b of c.data) if (b === 0x0a) events++;
      await (f as HashedFile).write(c.data);
    }
  } finally {
    if (f && name) files[`${sub}/${name}`] = await f.close();
  }
  return { files, events };
}

export interface AuditExportResult {
  out: string;
  streams: string[];
  events: number;
  ok: boolean;
}

async function emptyDir(out: string): Promise<void> {
  await mkdir(out, { recursive: true });
  if ((await readdir(out)).length > 0) throw cliError('CLI_USAGE', `--out ${out}: not empty`);
}

/**
 * `audit export`: every stream (or one tenant's) as stored, `<stream>/<day>.jsonl`, plus
 * `verification.json` (the chains verified now) and a signed `manifest.json` (`verify-export`
 * checks it). Re-verifiable offline with `verifyJsonl({ dir: out })`.
 */
export async function exportAudit(
  audit: AuditBackend,
  signingKey: string,
  tenant: string | undefined,
  out: string,
): Promise<AuditExportResult> {
  const key = await readSigningKey(signingKey);
  await emptyDir(out);
  const started = new Date().toISOString();
  const streams = tenant === undefined ? await audit.streams() : [streamName({ tenant_id: tenant })];
  const files: Record<string, FileEntry> = {};
  const perStream: Record<string, number> = {};
  let events = 0;
  for (const stream of streams) {
    const r = await exportAuditStream(audit, stream === '_unauthenticated' ? null : stream, out, stream);
    Object.assign(files, r.files);
    perStream[stream] = r.events;
    events += r.events;
  }
  const verification = await audit.verify(tenant);
  const vf = new HashedFile(join(out, 'verification.json'));
  await vf.write(`${JSON.stringify(verification, null, 2)}\n`);
  files['verification.json'] = await vf.close();
  await writeSignedManifest(out, key, {
    format: EXPORT_FORMAT,
    tool: { name: '@tenantscope/cli', version: VERSION },
    tenant: tenant ?? '*',
    started_at: started,
    finished_at: new Date().toISOString(),
    counts: { audit: perStream },
    files,
  });
  return { out, streams, events, ok: verification.ok };
}

/** `audit export --tenant t --out file.jsonl`: that one stream's lines, in one new file. */
export async function exportAuditFile(audit: AuditBackend, tenant: string, path: string): Promise<number> {
  const f = new HashedFile(path);
  let events = 0;
  try {
    for await (const c of audit.chunks(streamName({ tenant_id: tenant }))) {
      for (const b of c.data) if (b === 0x0a) events++;
      await f.write(c.data);
    }
  } finally {
    await f.close();
  }
  return events;
}
