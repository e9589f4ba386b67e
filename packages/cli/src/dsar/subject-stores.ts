/**
 * A data subject's data outside Postgres, as the config locates it: S3 objects (a key folder or a
 * metadata field), Qdrant points (a payload key) and secrets (exact names). Every operation goes
 * through the tenant-scoped clients, so it can only ever reach the tenant's own data; inside it,
 * the match is exact, so one subject never reaches another's (a subject id that cannot be part
 * of a key or a name matches nothing).
 */
import { join } from 'node:path';
import type { Tenant } from '@tenantscope/core';
import { SECRET_NAME_PATTERN } from '@tenantscope/secrets';
import { cliError } from '../errors.ts';
import { type FileEntry, HashedFile } from './export.ts';
import { exportObjects, keysByMetadata, s3Concurrency } from './s3-objects.ts';
import type { Stores } from './stores.ts';

export interface SubjectStore {
  store: 's3' | 'qdrant' | 'secrets';
  /** The unit counted: objects, points, names. */
  part: string;
  count(): Promise<number>;
  /** Writes the subject's items under `out/<store>/`, adds them to `files`, returns how many. */
  export(out: string, files: Record<string, FileEntry>): Promise<number>;
  /** Deletes the subject's items; returns how many were deleted. */
  erase(): Promise<number>;
}

/** Most objects one subject may have in S3 (beyond it the command stops: CLI_STORE_FAILED). */
const MAX_OBJECTS = 100_000;
/** Characters a subject id may have to be part of an S3 key folder. */
const KEY_SAFE = /^[A-Za-z0-9_.@+=-]{1,256}$/;
const PAGE = 256;

function s3Subject(s: Stores, tenant: Tenant, subject: string): SubjectStore | undefined {
  const c = s.cfg.s3?.subject;
  const s3 = s.s3;
  if (!s3 || !c) return undefined;
  const files = s3.forTenant(tenant);
  const concurrency = s3Concurrency(s.cfg);
  const keys = async (): Promise<string[]> => {
    if ('metadata' in c) return keysByMetadata(s3, tenant, c.metadata, subject, concurrency, MAX_OBJECTS);
    const out: string[] = [];
    if (!KEY_SAFE.test(subject) || subject === '.' || subject === '..') return out;
    for await (const o of files.iterate({ prefix: c.keyPattern.replace('{subject}', subject) })) {
      if (out.length >= MAX_OBJECTS) throw cliError('CLI_STORE_FAILED', `s3: more than ${MAX_OBJECTS} objects`);
      out.push(o.key);
    }
    return out;
  };
  return {
    store: 's3',
    part: 'objects',
    count: async () => (await keys()).length,
    async export(out, written) {
      const list = await keys();
      return (await exportObjects(s3, tenant, () => list, out, written, concurrency)).objects;
    },
    async erase() {
      const list = await keys();
      let n = 0;
      for (let i = 0; i < list.length; i += 1000) {
        const r = await files.deleteMany(list.slice(i, i + 1000));
        if (r.errors.length > 0) throw cliError('CLI_STORE_FAILED', `s3: ${r.errors.length} objects not deleted`);
        n += r.deleted.length;
      }
      return n;
    },
  };
}

function qdrantSubject(s: Stores, tenant: Tenant, subject: string): SubjectStore | undefined {
  const key = s.cfg.qdrant?.subjectKey;
  if (!s.qdrant || !key) return undefined;
  const q = s.qdrant.forTenant(tenant);
  // ANDed with the tenant filter by the scoped client.
  const filter = { must: [{ key, match: { value: subject } }] };
  const withVectors = s.cfg.qdrant?.withVectors ?? false;
  return {
    store: 'qdrant',
    part: 'points',
    count: () => q.count({ filter, exact: true }),
    async export(out, written) {
      const f = new HashedFile(join(out, 'qdrant', 'points.ndjson'));
      let n = 0;
      try {
        let offset: unknown;
        do {
          const page = await q.scroll({
            filter,
            limit: PAGE,
            with_payload: true,
            with_vector: withVectors,
            ...(offset === undefined ? {} : { offset: offset as string | number }),
          });
          for (const p of page.points) {
            await f.write(
              `${JSON.stringify({ id: p.id, payload: p.payload, ...(withVectors ? { vector: p.vector } : {}) })}\n`,
            );
            n++;
          }
          offset = page.next_page_offset ?? undefined;
        } while (offset !== undefined && offset !== null);
      } finally {
        written['qdrant/points.ndjson'] = await f.close();
      }
      return n;
    },
    async erase() {
      const before = await q.count({ filter, exact: true });
      await q.delete({ filter });
      return before;
    },
  };
}

function secretsSubject(s: Stores, tenant: Tenant, subject: string): SubjectStore | undefined {
  const templates = s.cfg.secrets?.subjectNames;
  const secrets = s.secrets;
  if (!secrets || !templates) return undefined;
  const wanted = new Set(
    templates.map((t) => t.replace('{subject}', subject)).filter((n) => SECRET_NAME_PATTERN.test(n)),
  );
  const names = async () =>
    wanted.size === 0
      ? []
      : (await secrets.exportTenant(tenant)).secrets.map((x) => x.name).filter((n) => wanted.has(n));
  return {
    store: 'secrets',
    part: 'names',
    count: async () => (await names()).length,
    async export(out, written) {
      const list = await names();
      const f = new HashedFile(join(out, 'secrets', 'names.ndjson'));
      for (const name of list) await f.write(`${JSON.stringify({ name })}\n`);
      written['secrets/names.ndjson'] = await f.close();
      return list.length;
    },
    async erase() {
      const admin = secrets.unscopedAdmin(tenant);
      let n = 0;
      for (const name of await names()) if (await admin.delete(name)) n++;
      return n;
    },
  };
}

/** The stores besides Postgres that the config locates a subject in. */
export function subjectStores(s: Stores, tenant: Tenant, subject: string): SubjectStore[] {
  return [s3Subject(s, tenant, subject), qdrantSubject(s, tenant, subject), secretsSubject(s, tenant, subject)].filter(
    (x): x is SubjectStore => x !== undefined,
  );
}
