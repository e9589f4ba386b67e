import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AuditEvent, argsHash, canonicalJson, JsonlAuditSink } from './audit.ts';

const ev = (tenant: string | null, i: number): AuditEvent => ({
  timestamp: new Date(0).toISOString(),
  tenant_id: tenant,
  session_id: null,
  subject: null,
  event_type: 'tool_call',
  tool_name: `t${i}`,
  args_hash: null,
  result_status: 'ok',
  reason: null,
  latency_ms: 1,
  ip_address: null,
});

describe('canonical args hash', () => {
  it('is independent of key order and changes with any value', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 1, c: 2 }] })).toBe('{"a":[2,{"c":2,"d":1}],"b":1}');
    expect(argsHash({ a: 1, b: 2 })).toBe(argsHash({ b: 2, a: 1 }));
    expect(argsHash({ a: 1 })).not.toBe(argsHash({ a: 2 }));
    expect(argsHash({})).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('JSONL audit sink', () => {
  it('writes one stream per tenant, all events, in order per tenant', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jsonl-'));
    const sink = new JsonlAuditSink({ dir, maxOpenFiles: 2 });
    const tenants = ['acme', 'globex', 'initech', null];
    await Promise.all(Array.from({ length: 400 }, (_, i) => sink.write(ev(tenants[i % 4] as string | null, i))));
    await sink.close();
    expect((await readdir(dir)).sort()).toEqual([
      '_unauthenticated.jsonl',
      'acme.jsonl',
      'globex.jsonl',
      'initech.jsonl',
    ]);
    for (const [k, t] of tenants.entries()) {
      const lines = (await readFile(sink.pathFor(t), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toHaveLength(100);
      expect(lines.every((l) => l.tenant_id === t)).toBe(true);
      expect(lines.map((l) => l.tool_name)).toEqual(Array.from({ length: 100 }, (_, j) => `t${k + 4 * j}`));
    }
  });

  it('rejects an event with an invalid tenant id instead of writing outside the directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jsonl-'));
    const sink = new JsonlAuditSink({ dir });
    await expect(sink.write(ev('../escape', 0))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails closed (AUDIT_WRITE_FAILED) when the directory cannot be created', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jsonl-'));
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    // A path below a regular file cannot be a directory, whoever we run as (root included).
    const sink = new JsonlAuditSink({ dir: join(file, 'audit') });
    await expect(sink.write(ev('acme', 0))).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
  });
});
