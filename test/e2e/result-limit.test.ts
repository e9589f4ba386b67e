/** Issue 11 "Bounded results, honest outcomes": every result is capped in bytes and answered. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  type AuditEvent,
  DEFAULT_MAX_RESULT_BYTES,
  jsonByteLength,
  MemoryAuditSink,
  ResultBudget,
  StaticTenantDirectory,
  tenantScope,
} from '@tenantscope/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { INIT, rawPost, startHarness, text } from './harness.ts';

describe('jsonByteLength', () => {
  it('equals the UTF-8 length of JSON.stringify for JSON values', () => {
    const values: unknown[] = [
      null,
      true,
      -1.5e-7,
      Number.NaN,
      'plain',
      'quote " backslash \\ newline \n tab \t nul \u0000 é 漢 😀',
      [1, undefined, () => 1, 'x', { a: undefined }],
      { a: 1, b: undefined, c: [null, { d: 'e' }], f: new Date(0), 'k"ey': 'v' },
      { content: [{ type: 'text', text: 'hello' }], structuredContent: { n: [1, 2, 3] } },
    ];
    for (const v of values) {
      expect(jsonByteLength(v, 1e9)).toBe(Buffer.byteLength(JSON.stringify(v), 'utf8'));
    }
    // Random strings over the whole UTF-16 range (escapes, DEL, lone surrogates), as values and keys.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 500; i++) {
      const str = Array.from({ length: rnd(40) }, () =>
        String.fromCharCode(rnd(4) === 0 ? rnd(0x10000) : rnd(4) === 0 ? rnd(0x20) : 0x20 + rnd(0x60)),
      ).join('');
      const v = { [str]: str, list: [str, str.length] };
      expect(jsonByteLength(v, 1e9), JSON.stringify(str)).toBe(Buffer.byteLength(JSON.stringify(v), 'utf8'));
    }
  });

  it('stops at the cap, and refuses values JSON cannot carry', () => {
    expect(jsonByteLength({ s: 'x'.repeat(2000) }, 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(
      jsonByteLength(
        Array.from({ length: 5000 }, () => 1),
        1000,
      ),
    ).toBe(Number.POSITIVE_INFINITY);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => jsonByteLength(cyclic, 1e6)).toThrow(expect.objectContaining({ code: 'RESULT_INVALID' }));
    expect(() => jsonByteLength({ n: 1n }, 1e6)).toThrow(expect.objectContaining({ code: 'RESULT_INVALID' }));
    const shared = { a: 1 };
    expect(jsonByteLength([shared, shared], 1e6)).toBe(JSON.stringify([shared, shared]).length); // not a cycle
  });

  it('ResultBudget throws RESULT_TOO_LARGE once the total passes the cap', () => {
    const b = new ResultBudget(100);
    b.take(60);
    b.takeJson('x'.repeat(30)); // 32 bytes
    expect(b.used).toBe(92);
    expect(() => b.take(9)).toThrow(expect.objectContaining({ code: 'RESULT_TOO_LARGE' }));
    expect(new ResultBudget().limit).toBe(DEFAULT_MAX_RESULT_BYTES);
    expect(() => new ResultBudget(0)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('a bad cap is refused at configuration time, globally and per tool', async () => {
    const h = await startHarness();
    try {
      const verifier = await h.issuer.verifier();
      const base = { verifier, directory: new StaticTenantDirectory({}), audit: new MemoryAuditSink() };
      expect(() => tenantScope({ ...base, limits: { maxResultBytes: -1 } })).toThrow(
        expect.objectContaining({ code: 'INVALID_CONFIG' }),
      );
      for (const maxResultBytes of [0, 1.5, Number.NaN, '1000' as never]) {
        expect(() => h.scope.tool({ name: 'bad_cap', description: 'x', maxResultBytes, handler: () => 1 })).toThrow(
          expect.objectContaining({ code: 'INVALID_CONFIG' }),
        );
      }
    } finally {
      await h.close();
    }
  });
});

/** Resolved by the `slow` tool when its handler starts, so a test can disconnect mid-call. */
let slowStarted: () => void = () => {};

async function withBigTools(limits: { maxResultBytes?: number } = {}) {
  const h = await startHarness({
    tenants: { acme: { tools: ['whoami', 'big', 'small_cap', 'bigint', 'slow'] } },
    scope: { limits },
  });
  h.scope
    .tool({
      name: 'big',
      description: 'returns n bytes',
      input: { n: z.number().int().min(0) },
      handler: ({ n }) => ({ data: 'x'.repeat(n) }),
    })
    .tool({
      name: 'small_cap',
      description: 'returns n bytes under a 1000-byte cap',
      maxResultBytes: 1000,
      input: { n: z.number().int().min(0) },
      handler: ({ n }) => ({ data: 'x'.repeat(n) }),
    })
    .tool({
      name: 'bigint',
      description: 'a result JSON cannot carry',
      handler: () => ({ content: [{ type: 'text' as const, text: 'n' }], structuredContent: { n: 1n as never } }),
    })
    .tool({
      name: 'slow',
      description: 'answers after a while',
      handler: async () => {
        slowStarted();
        await new Promise((r) => setTimeout(r, 400));
        return { done: true };
      },
    });
  return h;
}

const calls = (events: AuditEvent[]) => events.filter((e) => e.event_type === 'tool_call');

describe('result byte cap through the server', () => {
  it('an oversized result is a RESULT_TOO_LARGE error result, audited as the error the client got', async () => {
    const h = await withBigTools();
    try {
      const c = await h.connect(await h.token('acme'));
      const ok = await c.callTool({ name: 'big', arguments: { n: 1000 } });
      expect(ok.isError).toBeFalsy();
      const r = await c.callTool({ name: 'big', arguments: { n: 2 * 1024 * 1024 } });
      expect(r.isError).toBe(true);
      expect(r._meta).toEqual({ code: 'RESULT_TOO_LARGE' });
      expect(text(r)).toBe(`RESULT_TOO_LARGE: the result is larger than ${DEFAULT_MAX_RESULT_BYTES} bytes`);
      // Just under the cap once wrapped (text + structuredContent double it): still refused, as sent.
      const near = await c.callTool({ name: 'big', arguments: { n: 600 * 1024 } });
      expect(near._meta).toEqual({ code: 'RESULT_TOO_LARGE' });
      const ev = calls(await h.stream('acme'));
      expect(ev.map((e) => [e.result_status, e.reason])).toEqual([
        ['ok', null],
        ['error', 'RESULT_TOO_LARGE'],
        ['error', 'RESULT_TOO_LARGE'],
      ]);
      await c.close();
    } finally {
      await h.close();
    }
  });

  it('the cap is configurable globally and per tool', async () => {
    const h = await withBigTools({ maxResultBytes: 5000 });
    try {
      const c = await h.connect(await h.token('acme'));
      expect((await c.callTool({ name: 'big', arguments: { n: 2000 } })).isError).toBeFalsy();
      expect((await c.callTool({ name: 'big', arguments: { n: 3000 } }))._meta).toEqual({ code: 'RESULT_TOO_LARGE' });
      expect((await c.callTool({ name: 'small_cap', arguments: { n: 100 } })).isError).toBeFalsy();
      expect((await c.callTool({ name: 'small_cap', arguments: { n: 600 } }))._meta).toEqual({
        code: 'RESULT_TOO_LARGE',
      });
      await c.close();
    } finally {
      await h.close();
    }
  });

  it('a result JSON cannot carry still gets a JSON-RPC answer (not an empty 200 stream)', async () => {
    const h = await withBigTools();
    try {
      const init = await rawPost(h.url, await h.token('acme'), INIT);
      const sid = init.sessionId as string;
      const r = await rawPost(
        h.url,
        await h.token('acme'),
        { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'bigint', arguments: {} } },
        sid,
      );
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({
        jsonrpc: '2.0',
        id: 7,
        result: { isError: true, _meta: { code: 'RESULT_INVALID' } },
      });
      expect(calls(await h.stream('acme')).at(-1)).toMatchObject({ result_status: 'error', reason: 'RESULT_INVALID' });
    } finally {
      await h.close();
    }
  });

  it('a result the client never received is recorded as undelivered', async () => {
    const h = await withBigTools();
    try {
      const token = await h.token('acme');
      const sid = (await rawPost(h.url, token, INIT)).sessionId as string;
      const abort = new AbortController();
      const started = new Promise<void>((r) => {
        slowStarted = r;
      });
      const pending = fetch(h.url, {
        method: 'POST',
        signal: abort.signal,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sid,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'slow', arguments: {} } }),
      }).then((res) => res.text());
      await started;
      abort.abort();
      await pending.catch(() => undefined);
      let undelivered: AuditEvent[] = [];
      for (let i = 0; i < 40 && undelivered.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        undelivered = (await h.stream('acme')).filter((e) => e.event_type === 'response_undelivered');
      }
      expect(undelivered).toHaveLength(1);
      expect(undelivered[0]).toMatchObject({
        result_status: 'error',
        reason: 'RESPONSE_UNDELIVERED',
        request_id: '9',
        session_id: sid,
      });
    } finally {
      await h.close();
    }
  });
});

/** Peak resident set (VmHWM) of a process, in MB, from /proc. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

const hasProc = (() => {
  try {
    readFileSync('/proc/self/status');
    return true;
  } catch {
    return false;
  }
})();
if (!hasProc) console.log('[skip] result memory test: needs /proc (Linux) to read the child server peak RSS');

describe.skipIf(!hasProc)('memory under oversized results (a child server process)', () => {
  // Stated bound: the child's peak RSS stays under 400 MB while it answers 5 concurrent calls whose
  // handler builds 30 MB each and 5 concurrent calls that would read 300 MB each without the cap.
  // Before the cap, 5 concurrent calls like this took the example server past 1.4 GB.
  const BOUND_MB = 400;
  let child: ChildProcess;
  let url = '';
  let token = '';

  beforeAll(async () => {
    child = spawn(process.execPath, ['test/e2e/fixtures/big-result-server.ts'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`child server exited with ${code}`)));
    });
    ({ url, token } = JSON.parse(line) as { url: string; token: string });
  }, 60_000);

  afterAll(() => {
    child?.kill('SIGTERM');
  });

  it('answers every call with RESULT_TOO_LARGE and stays under the bound', async () => {
    const sid = (await rawPost(url, token, INIT)).sessionId as string;
    const before = peakRssMb(child.pid as number);
    const call = (name: string, id: number) =>
      rawPost(
        url,
        token,
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: { mb: name === 'naive_big' ? 30 : 300 } },
        },
        sid,
      );
    const results = await Promise.all([
      ...[1, 2, 3, 4, 5].map((i) => call('naive_big', i)),
      ...[6, 7, 8, 9, 10].map((i) => call('streamed_big', i)),
    ]);
    const peak = peakRssMb(child.pid as number);
    console.log(
      `[memory] child peak RSS before ${before.toFixed(0)} MB, after 10 oversized calls ${peak.toFixed(0)} MB (bound ${BOUND_MB} MB)`,
    );
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({
        jsonrpc: '2.0',
        id: i + 1,
        result: { isError: true, _meta: { code: 'RESULT_TOO_LARGE' } },
      });
    }
    expect(peak).toBeLessThan(BOUND_MB);
  }, 120_000);
});
