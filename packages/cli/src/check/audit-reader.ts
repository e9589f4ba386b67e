import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseLine } from '@tenantscope/audit';
import pg from 'pg';
import type { CheckConfig } from '../config.ts';
import { cliError } from '../errors.ts';

/** The audit fields the checks read; any JSONL with these names works, tenantscope or not. */
export interface SeenEvent {
  stream: string;
  timestamp: string;
  tenant_id: string | null;
  session_id: string | null;
  subject: string | null;
  event_type: string | null;
  tool_name: string | null;
  result_status: string | null;
  reason: string | null;
}

/** Events read at most, over all streams, per read. */
export const MAX_EVENTS = 200_000;
const MAX_FILE_BYTES = 256 * 1024 * 1024;

type Location = NonNullable<CheckConfig['audit']>;

export function describeLocation(loc: Location): string {
  return 'jsonlDir' in loc ? `JSONL ${loc.jsonlDir}` : `Postgres ${redactUrl(loc.postgresUrl)} (${loc.schema})`;
}

/** A URL without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<url>';
  }
}

function toSeen(stream: string, e: Record<string, unknown>): SeenEvent {
  const s = (k: string) => (typeof e[k] === 'string' ? (e[k] as string) : null);
  return {
    stream,
    timestamp: s('timestamp') ?? '',
    tenant_id: s('tenant_id'),
    session_id: s('session_id'),
    subject: s('subject'),
    event_type: s('event_type'),
    tool_name: s('tool_name'),
    result_status: s('result_status'),
    reason: s('reason'),
  };
}

/** Events at or after `since`, from every stream in the audit location. */
export async function readAudit(loc: Location, since: Date): Promise<SeenEvent[]> {
  try {
    return 'jsonlDir' in loc ? await readJsonlDir(loc.jsonlDir, since) : await readPostgres(loc, since);
  } catch (cause) {
    if ((cause as { code?: string }).code === 'CLI_AUDIT_UNREADABLE') throw cause;
    throw cliError('CLI_AUDIT_UNREADABLE', `audit at ${describeLocation(loc)} could not be read`, { cause });
  }
}

async function readJsonlDir(dir: string, since: Date): Promise<SeenEvent[]> {
  const out: SeenEvent[] = [];
  const sinceIso = since.toISOString();
  const day = sinceIso.slice(0, 10);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.jsonl')) {
      await readFileInto(join(dir, entry.name), entry.name.slice(0, -6), sinceIso, out);
    } else if (entry.isDirectory()) {
      // hash-chained streams: <tenant>/<YYYY-MM-DD>.jsonl; only days from `since` on
      for (const f of (await readdir(join(dir, entry.name))).sort()) {
        if (/^\d{4}-\d{2}-\d{2}\.jsonl$/.test(f) && f.slice(0, 10) >= day) {
          await readFileInto(join(dir, entry.name, f), entry.name, sinceIso, out);
        }
      }
    }
  }
  return out;
}

async function readFileInto(path: string, stream: string, sinceIso: string, out: SeenEvent[]): Promise<void> {
  if ((await stat(path)).size > MAX_FILE_BYTES) {
    throw cliError('CLI_AUDIT_UNREADABLE', `${path} is larger than ${MAX_FILE_BYTES} bytes`);
  }
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let event: Record<string, unknown> | null = null;
    const chained = parseLine(line);
    try {
      event = JSON.parse(chained ? chained.event : line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line
    }
    if (!event || typeof event !== 'object') continue;
    const seen = toSeen(stream, event);
    if (seen.timestamp >= sinceIso) out.push(seen);
    if (out.length > MAX_EVENTS)
      throw cliError('CLI_AUDIT_UNREADABLE', `more than ${MAX_EVENTS} audit events since the check started`);
  }
}

async function readPostgres(loc: Extract<Location, { postgresUrl: string }>, since: Date): Promise<SeenEvent[]> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(loc.schema)) {
    throw cliError('CLI_CONFIG_INVALID', 'check.audit.schema: not a plain lowercase identifier');
  }
  const client = new pg.Client({ connectionString: loc.postgresUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const r = await client.query<{ stream: string; event: string }>(
      `SELECT stream, event FROM "${loc.schema}".events WHERE ts >= $1 ORDER BY stream, seq LIMIT ${MAX_EVENTS + 1}`,
      [since],
    );
    if (r.rows.length > MAX_EVENTS)
      throw cliError('CLI_AUDIT_UNREADABLE', `more than ${MAX_EVENTS} audit events since the check started`);
    return r.rows.map((row) => toSeen(row.stream, JSON.parse(row.event) as Record<string, unknown>));
  } finally {
    await client.end().catch(() => undefined);
  }
}
