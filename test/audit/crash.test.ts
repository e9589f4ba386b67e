/**
 * kill -9 of a writer process mid-batch: every event whose write had resolved (the child printed
 * its ack) is stored, and every chain verifies. For the Postgres sink and the JSONL sink.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChainedJsonlAuditSink, JsonlAnchorStore, verifyJsonl } from '@tenantscope/audit';
import { PostgresAuditStore } from '@tenantscope/audit/postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AuditTestDb, createAuditTestDb, sampleEvent } from './pg.ts';

const child = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crash-writer.ts');
let db: AuditTestDb;
beforeAll(async () => {
  db = await createAuditTestDb(inject('databaseUrl'), 'crash');
});
afterAll(async () => {
  await db?.close();
});

/** Runs the writer until it has acknowledged `atLeast` events, then SIGKILLs it. Returns the acks. */
async function runAndKill(args: string[], atLeast: number): Promise<Map<string, Set<string>>> {
  const proc: ChildProcess = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acked = new Map<string, Set<string>>();
  let count = 0;
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`writer acknowledged only ${count} events`)), 60_000);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited on its own (${code})`));
    });
    proc.stdout?.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        const [word, tenant, id] = l.split(' ');
        if (word !== 'ack' || !tenant || !id) continue;
        const s = acked.get(tenant) ?? new Set<string>();
        acked.set(tenant, s);
        s.add(id);
        count++;
      }
      if (count >= atLeast && !proc.killed) proc.kill('SIGKILL'); // mid-batch: writes are in flight
    });
  });
  return acked;
}

describe('several writer processes at once', () => {
  it('three processes appending to the same tenants give one gap-free chain per tenant', async () => {
    const before = await db.auditor.query<{ n: number }>('SELECT count(*)::int AS n FROM tenantscope_audit.events');
    const runs = Array.from(
      { length: 3 },
      () =>
        new Promise<string>((resolve, reject) => {
          const p = spawn(process.execPath, [child, 'postgres', db.urls.writer, '600'], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          p.stdout?.on('data', (c: Buffer) => {
            out += c.toString('utf8');
          });
          p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`writer exited ${code}`))));
        }),
    );
    const outs = await Promise.all(runs);
    expect(outs.every((o) => o.endsWith('done\n'))).toBe(true);
    const after = await db.auditor.query<{ n: number }>('SELECT count(*)::int AS n FROM tenantscope_audit.events');
    expect((after.rows[0]?.n ?? 0) - (before.rows[0]?.n ?? 0)).toBe(1800);
    const v = await new PostgresAuditStore({ pool: db.auditor }).verify();
    expect(v.ok).toBe(true);
    for (const s of v.streams) expect(s.lastSeq).toBe(s.events); // gap-free from seq 1
  });
});

describe('crash of a writer process (kill -9)', () => {
  it('Postgres sink: every acknowledged event is stored and every chain verifies', async () => {
    const acked = await runAndKill(['postgres', db.urls.writer], 3000);
    const stored = new Map<string, Set<string>>();
    const r = await db.auditor.query<{ stream: string; id: string }>(
      `SELECT stream, event::jsonb->>'request_id' AS id FROM tenantscope_audit.events`,
    );
    for (const row of r.rows) {
      const s = stored.get(row.stream) ?? new Set<string>();
      stored.set(row.stream, s);
      s.add(row.id);
    }
    let total = 0;
    for (const [tenant, ids] of acked) {
      const missing = [...ids].filter((id) => !stored.get(tenant)?.has(id));
      expect(missing, `acknowledged but missing in ${tenant}`).toEqual([]);
      total += ids.size;
    }
    expect(total).toBeGreaterThanOrEqual(3000);
    const store = new PostgresAuditStore({ pool: db.auditor });
    const v = await store.verify();
    expect(v.streams.map((s) => [s.stream, s.ok])).toEqual([
      ['acme', true],
      ['globex', true],
      ['initech', true],
    ]);
    console.log(
      `[audit] crash (postgres): ${total} acknowledged, ${r.rows.length} stored (the rest were committed but not yet acknowledged, or never committed)`,
    );
  });

  it('JSONL sink: every acknowledged event is on disk, a torn tail is cut on restart, chains verify', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ts-audit-crash-'));
    try {
      const acked = await runAndKill(['jsonl', dir], 1500);
      const anchors = new JsonlAnchorStore({ dir: join(dir, '..', `${dir.split('/').pop()}-anchors`) });
      const before = await verifyJsonl({ dir, anchors });
      expect(before.ok).toBe(true);
      const sink = new ChainedJsonlAuditSink({ dir });
      let total = 0;
      for (const [tenant, ids] of acked) {
        const stored = new Set((await sink.events(tenant)).map((e) => String(e.request_id)));
        expect([...ids].filter((id) => !stored.has(id))).toEqual([]);
        total += ids.size;
        await sink.write(sampleEvent(tenant, -1)); // a restarted writer continues each chain
      }
      await sink.close();
      const after = await verifyJsonl({ dir, anchors });
      expect(after.ok).toBe(true);
      expect(total).toBeGreaterThanOrEqual(1500);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
