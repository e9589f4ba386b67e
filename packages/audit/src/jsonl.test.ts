import { appendFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sampleEvent } from '../../../test/audit/pg.ts';
import { linkHash } from './chain.ts';
import { anchorJsonl, ChainedJsonlAuditSink, JsonlAnchorStore, parseLine, purgeJsonl, verifyJsonl } from './jsonl.ts';

let root: string;
let dir: string;
let anchors: JsonlAnchorStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ts-audit-jsonl-'));
  dir = join(root, 'streams');
  anchors = new JsonlAnchorStore({ dir: join(root, 'anchors') });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const DAY = 86_400_000;
/** A sink whose clock the test moves. */
function sinkAt(start: number) {
  const clock = { t: start };
  const sink = new ChainedJsonlAuditSink({ dir, now: () => new Date(clock.t) });
  return { sink, clock };
}

async function lines(tenant: string, file: string): Promise<string[]> {
  return (await readFile(join(dir, tenant, file), 'utf8')).split('\n').filter(Boolean);
}
async function rewrite(tenant: string, file: string, ls: string[]): Promise<void> {
  await writeFile(join(dir, tenant, file), ls.map((l) => `${l}\n`).join(''));
}

describe('ChainedJsonlAuditSink', () => {
  it('writes one file per tenant per day with one chain across the files', async () => {
    const t0 = Date.parse('2026-03-01T12:00:00Z');
    const { sink, clock } = sinkAt(t0);
    for (let d = 0; d < 3; d++) {
      clock.t = t0 + d * DAY;
      await Promise.all(Array.from({ length: 10 }, (_, i) => sink.write(sampleEvent('acme', d * 10 + i))));
      await sink.write(sampleEvent('globex', d));
    }
    await sink.close();
    expect(await readdir(join(dir, 'acme'))).toEqual(['2026-03-01.jsonl', '2026-03-02.jsonl', '2026-03-03.jsonl']);
    const first = parseLine((await lines('acme', '2026-03-02.jsonl'))[0] as string);
    const prev = parseLine((await lines('acme', '2026-03-01.jsonl'))[9] as string);
    expect(first?.seq).toBe(11);
    expect(first?.prevHash).toBe(prev?.hash);
    const v = await verifyJsonl({ dir, anchors });
    expect(v.ok).toBe(true);
    expect(v.streams.map((s) => [s.stream, s.events])).toEqual([
      ['acme', 30],
      ['globex', 3],
    ]);
  });

  it('continues the chain after a restart and cuts a torn last line (a crash mid-append)', async () => {
    const { sink } = sinkAt(Date.parse('2026-03-01T12:00:00Z'));
    for (let i = 0; i < 5; i++) await sink.write(sampleEvent('acme', i));
    await sink.close();
    await appendFile(join(dir, 'acme', '2026-03-01.jsonl'), '{"seq":6,"prev_hash":"ab'); // torn
    expect((await verifyJsonl({ dir, anchors })).ok).toBe(true); // a torn tail was never acknowledged
    const again = sinkAt(Date.parse('2026-03-01T13:00:00Z')).sink;
    await again.write(sampleEvent('acme', 6));
    await again.close();
    const ls = await lines('acme', '2026-03-01.jsonl');
    expect(ls).toHaveLength(6);
    expect(parseLine(ls[5] as string)?.seq).toBe(6);
    expect((await verifyJsonl({ dir, anchors, tenant: 'acme' })).ok).toBe(true);
  });

  it('detects edits, deletions, reorders, insertions, a removed day file and tail truncation', async () => {
    const t0 = Date.parse('2026-03-01T12:00:00Z');
    const tenants = ['edit', 'del', 'swap', 'ins', 'dayfile', 'trunc', 'garbled'];
    const { sink, clock } = sinkAt(t0);
    for (let d = 0; d < 3; d++) {
      clock.t = t0 + d * DAY;
      for (const t of tenants) for (let i = 0; i < 5; i++) await sink.write(sampleEvent(t, i));
    }
    await sink.close();
    await anchorJsonl({ dir, anchors });
    expect((await verifyJsonl({ dir, anchors })).ok).toBe(true);
    const f2 = '2026-03-02.jsonl';
    // seq 6..10 are in f2
    let ls = await lines('edit', f2);
    ls[2] = (ls[2] as string).replace('"result_status":"ok"', '"result_status":"error"');
    await rewrite('edit', f2, ls);
    ls = await lines('del', f2);
    ls.splice(1, 1); // seq 7
    await rewrite('del', f2, ls);
    ls = await lines('swap', f2);
    [ls[3], ls[4]] = [ls[4] as string, ls[3] as string]; // seq 9 and 10
    await rewrite('swap', f2, ls);
    ls = await lines('ins', f2);
    const before = parseLine(ls[0] as string);
    const forged = JSON.stringify(sampleEvent('ins', 99, { tool_name: 'forged' }));
    const fh = linkHash(before?.hash as string, forged);
    ls.splice(1, 0, `{"seq":7,"prev_hash":"${before?.hash}","hash":"${fh}","event":${forged}}`);
    await rewrite('ins', f2, ls);
    await unlink(join(dir, 'dayfile', f2));
    ls = await lines('trunc', '2026-03-03.jsonl');
    await rewrite('trunc', '2026-03-03.jsonl', ls.slice(0, 3)); // seq 14, 15 gone
    ls = await lines('garbled', f2);
    ls[0] = 'not json at all';
    await rewrite('garbled', f2, ls);

    const v = await verifyJsonl({ dir, anchors });
    const got = Object.fromEntries(v.streams.map((s) => [s.stream, s.break && `${s.break.cause}@${s.break.seq}`]));
    expect(got).toEqual({
      edit: 'edit@8',
      del: 'deletion@7',
      swap: 'reorder@9',
      ins: 'insertion@7',
      dayfile: 'deletion@6',
      trunc: 'truncation@14',
      garbled: 'edit@6',
    });
  });

  it('retention deletes old day files after a checkpoint; the rest verifies and the purge is audited', async () => {
    const now = Date.parse('2026-11-26T12:00:00Z');
    const { sink, clock } = sinkAt(now - 500 * DAY);
    for (let i = 0; i < 4; i++) await sink.write(sampleEvent('acme', i));
    clock.t = now - 450 * DAY;
    for (let i = 0; i < 4; i++) await sink.write(sampleEvent('acme', i));
    clock.t = now;
    for (let i = 0; i < 2; i++) await sink.write(sampleEvent('acme', i));
    await expect(
      purgeJsonl({ sink, anchors, tenant: 'acme', olderThanDays: 100, now: new Date(now) }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const res = await purgeJsonl({ sink, anchors, tenant: 'acme', now: new Date(now) });
    expect(res).toEqual({ purgedFiles: ['2025-07-14.jsonl', '2025-09-02.jsonl'], purgedThrough: 8 });
    await sink.close();
    const v = await verifyJsonl({ dir, anchors, tenant: 'acme' });
    expect(v.ok).toBe(true);
    expect(v.streams[0]).toMatchObject({ firstSeq: 9, lastSeq: 11, purgedThrough: 8 });
    const events = await new ChainedJsonlAuditSink({ dir }).events('acme');
    expect(events.at(-1)).toMatchObject({ event_type: 'audit_purge', details: { purged_through_seq: 8 } });
  });
});
