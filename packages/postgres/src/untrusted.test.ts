/**
 * queryUntrusted's byte limit: an oversized result stops being read at the limit (the socket is
 * dropped, the server stops), fails with PG_RESULT_TOO_LARGE, and memory stays bounded even with
 * several such calls at once.
 */
import { codeOf } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScopedPool, scopedPool, type TenantDb } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';
import { leadingKeyword } from './untrusted.ts';

let fx: PgFixture;
let scoped: ScopedPool;
let acme: TenantDb;
const HUGE = "SELECT repeat('x', 1000000) AS x FROM generate_series(1, 40)"; // ~40 MB of rows

beforeAll(async () => {
  fx = await pgFixture('untrusted', ['acme', 'globex']);
  scoped = scopedPool({ connectionString: fx.db.appUrl, max: 8 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
  acme = scoped.forTenant(await fx.tenant('acme'));
});
afterAll(async () => {
  await scoped?.end();
  await fx?.close();
});

describe('queryUntrusted byte limit', () => {
  it('refuses a 40 MB result with PG_RESULT_TOO_LARGE (default 1 MiB), and the pool keeps working', async () => {
    const t0 = performance.now();
    const err = await acme.queryUntrusted(HUGE).catch((e) => e);
    const ms = performance.now() - t0;
    expect(err.code).toBe('PG_RESULT_TOO_LARGE');
    expect(err.status).toBe(413);
    expect(err.details).toEqual({ maxBytes: 1024 * 1024 });
    expect(err.message).not.toMatch(/xxxx/);
    console.log(`[untrusted] 40 MB result refused after ${ms.toFixed(0)} ms`);
    const r = await acme.queryUntrusted<{ n: number }>('SELECT count(*)::int AS n FROM customers');
    expect(r.rows[0]?.n).toBe(3);
  });

  it('returns results under the limit whole, and honours a per-call and a per-pool limit', async () => {
    const under = await acme.queryUntrusted<{ x: string }>(
      "SELECT repeat('x', 1000) AS x FROM generate_series(1, 500)",
    );
    expect(under.rows).toHaveLength(500);
    expect(
      await codeOf(acme.queryUntrusted("SELECT repeat('x', 2000) FROM generate_series(1, 10)", [], { maxBytes: 4096 })),
    ).toBe('PG_RESULT_TOO_LARGE');
    const small = scopedPool(
      { connectionString: fx.db.appUrl, max: 1 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler, untrustedMaxBytes: 64 * 1024 },
    );
    try {
      const db = small.forTenant(await fx.tenant('acme'));
      expect(await codeOf(db.queryUntrusted("SELECT repeat('x', 100000)"))).toBe('PG_RESULT_TOO_LARGE');
      expect(await codeOf(db.queryUntrusted("SELECT repeat('x', 10000)"))).toBe('ok');
    } finally {
      await small.end();
    }
    expect(await codeOf(acme.queryUntrusted('SELECT 1', [], { maxBytes: 10 }))).toBe('PG_IDENTIFIER_INVALID');
  });

  it('5 concurrent oversized calls keep RSS growth under 64 MiB (each stops at ~1 MiB, not 40 MB)', async () => {
    // warm-up: one refused call, so lazily loaded code and the pool's first connections are counted out
    await codeOf(acme.queryUntrusted(HUGE));
    (globalThis as { gc?: () => void }).gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    let codes: string[];
    try {
      codes = await Promise.all(Array.from({ length: 5 }, () => codeOf(acme.queryUntrusted(HUGE))));
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const growth = (peak - base) / 2 ** 20;
    console.log(
      `[untrusted] 5 concurrent 40 MB results: RSS ${(base / 2 ** 20).toFixed(0)} MiB -> peak ${(peak / 2 ** 20).toFixed(0)} MiB (+${growth.toFixed(1)} MiB; bound 64 MiB)`,
    );
    expect(codes).toEqual(Array(5).fill('PG_RESULT_TOO_LARGE'));
    expect(growth).toBeLessThan(64);
  });

  it('the server stops: no backend of the app role keeps running the refused statement', async () => {
    await codeOf(acme.queryUntrusted(HUGE));
    const su = new (await import('pg')).default.Client({ connectionString: fx.db.superUrl });
    await su.connect();
    try {
      let running = 1;
      for (let i = 0; i < 50 && running > 0; i++) {
        const r = await su.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%repeat(''x'', 1000000)%' AND state = 'active'",
          [fx.db.appRole],
        );
        running = r.rows[0]?.n ?? 0;
        if (running > 0) await new Promise((res) => setTimeout(res, 100));
      }
      expect(running).toBe(0);
    } finally {
      await su.end();
    }
  });
});

describe('leadingKeyword', () => {
  it.each([
    ['SELECT 1', 'select'],
    ['  (  select 1)', 'select'],
    ['-- hi\nWITH x AS (SELECT 1) SELECT * FROM x', 'with'],
    ['/* a /* nested */ b */EXPLAIN SELECT 1', 'explain'],
    ['/* unterminated', ''],
    ['explain\tanalyze select 1', 'explain'],
    ['Do $$ begin end $$', 'do'],
  ])('%j -> %s', (text, kw) => {
    expect(leadingKeyword(text)).toBe(kw);
  });
});
