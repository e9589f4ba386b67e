/**
 * Move fences on a real PostgreSQL (and behind PgBouncer in the pooler pass): a fenced tenant
 * cannot write at that database by any binding path, other tenants are not touched, the fence
 * waits for transactions admitted before it, hot lanes are closed by it, and the app role can
 * neither see nor forge fence rows.
 */
import type { Tenant } from '@tenantscope/core';
import { codeOf } from '@tenantscope/testkit';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  exclusiveTransaction,
  fenceTenant,
  installTenantScope,
  isFenced,
  type ScopedPool,
  scopedPool,
  unfenceTenant,
} from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';
import { holdTransaction } from './testing/held.ts';

let fx: PgFixture;
let plain: ScopedPool;
let fast: ScopedPool;
let acme: Tenant;
let globex: Tenant;
let su: pg.Client;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settled = <T>(p: Promise<T>) => {
  const s = { done: false };
  p.then(
    () => {
      s.done = true;
    },
    () => {
      s.done = true;
    },
  );
  return s;
};

/** acme gets a hot lane on `fast` (promotion connects in the background). */
async function acmeHot(): Promise<void> {
  await fast.forTenant(acme).query('SELECT 1');
  for (let waited = 0; fast.stats().hotTenants === 0 && waited < 5000; waited += 20) await sleep(20);
  expect(fast.stats().hotTenants).toBe(1);
}

/** Rows of a tenant in `notes`, counted by the superuser (no binding involved). */
async function notesOf(tenant: string): Promise<number> {
  const r = await su.query<{ n: number }>('SELECT count(*)::int AS n FROM notes WHERE tenant_id = $1', [tenant]);
  return r.rows[0]?.n ?? -1;
}

beforeAll(async () => {
  fx = await pgFixture('fence', ['acme', 'globex', 'initech']);
  plain = scopedPool({ connectionString: fx.db.appUrl, max: 4 }, { bindingKey: fx.bindingKey, pooler: fx.pooler });
  fast = scopedPool(
    { connectionString: fx.db.appUrl, max: 2 },
    { bindingKey: fx.bindingKey, pooler: fx.pooler, multiplex: 2, hot: { maxTenants: 2, promoteAfter: 1 } },
  );
  acme = await fx.tenant('acme');
  globex = await fx.tenant('globex');
  su = new pg.Client({ connectionString: fx.db.superUrl });
  await su.connect();
});
afterAll(async () => {
  await fast?.end();
  await plain?.end();
  await su?.end();
  await fx?.close();
});
beforeEach(async () => {
  await unfenceTenant(fx.owner, 'acme');
  await unfenceTenant(fx.owner, 'globex');
});

describe('a fenced tenant cannot write at that database', () => {
  it('by any path: query, transaction (any isolation), queryUntrusted, multiplexed, hot lane, cursor checkout', async () => {
    // acme has a hot lane before the fence (direct mode: session-bound; pooler mode: per statement)
    await acmeHot();
    const before = await notesOf('acme');
    await fenceTenant(fx.owner, 'acme', { lockTimeoutMs: 5000 });
    expect(await isFenced(fx.owner, 'acme')).toBe(true);
    const ins = "INSERT INTO notes (body) VALUES ('after the fence')";
    const attempts: [string, () => Promise<unknown>][] = [
      ['query', () => plain.forTenant(acme).query(ins)],
      ['query on the fast path', () => fast.forTenant(acme).query(ins)],
      ['transaction', () => plain.forTenant(acme).transaction((tx) => tx.query(ins))],
      [
        'transaction repeatable read',
        () => plain.forTenant(acme).transaction((tx) => tx.query(ins), { isolation: 'repeatable read' }),
      ],
      [
        'transaction serializable',
        () => plain.forTenant(acme).transaction((tx) => tx.query(ins), { isolation: 'serializable' }),
      ],
      ['queryUntrusted read-write', () => plain.forTenant(acme).queryUntrusted(ins, [], { readOnly: false })],
      ['multi-statement text', () => plain.forTenant(acme).query(`${ins}; ${ins}`)],
      [
        'cursor checkout (read-write)',
        async () => {
          const c = await plain.cursorCheckout(acme, false);
          await c.finish(false);
        },
      ],
    ];
    for (const [label, attempt] of attempts) {
      const code = await codeOf(attempt());
      expect(code, label).toBe('PLACEMENT_PAUSED');
    }
    expect(await notesOf('acme')).toBe(before);
    // The hot lane is gone, and a new one cannot be made while the fence stands.
    for (let i = 0; i < 5; i++) await codeOf(fast.forTenant(acme).query(ins));
    await sleep(300);
    expect(await codeOf(fast.forTenant(acme).query(ins))).toBe('PLACEMENT_PAUSED');
    expect(fast.stats().hotTenants).toBe(0);
    expect(await notesOf('acme')).toBe(before);
  });

  it('the refusal is typed, retryable and names no other tenant', async () => {
    await fenceTenant(fx.owner, 'acme');
    const err = await plain
      .forTenant(acme)
      .query("INSERT INTO notes (body) VALUES ('x')")
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PLACEMENT_PAUSED', status: 503, details: { fenced: true } });
    expect(String((err as Error).message)).not.toMatch(/globex|initech/);
  });

  it('a refused bind keeps its pooled connection (other tenants need no reconnect)', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.appUrl, max: 1, pipeline: true } as pg.PoolConfig);
    let removed = 0;
    pool.on('remove', () => removed++);
    const s = scopedPool(pool, { bindingKey: fx.bindingKey, pooler: fx.pooler });
    try {
      await s.forTenant(globex).query('SELECT 1');
      await fenceTenant(fx.owner, 'acme');
      for (let i = 0; i < 3; i++) {
        expect(await codeOf(s.forTenant(acme).query("INSERT INTO notes (body) VALUES ('x')"))).toBe('PLACEMENT_PAUSED');
        expect(
          await codeOf(s.forTenant(acme).transaction((tx) => tx.query("INSERT INTO notes (body) VALUES ('x')"))),
        ).toBe('PLACEMENT_PAUSED');
      }
      await s.forTenant(globex).query('SELECT 1');
      expect(removed).toBe(0);
    } finally {
      await s.end();
      await pool.end();
    }
  });

  it('read-only transactions of the fenced tenant still read there (the mover counts the old place)', async () => {
    await fenceTenant(fx.owner, 'acme');
    const n = await plain
      .forTenant(acme)
      .transaction((tx) => tx.query<{ n: number }>('SELECT count(*)::int AS n FROM customers'), { readOnly: true });
    expect(n.rows[0]?.n).toBe(3);
  });

  it('other tenants bind and write during the fence, on every path', async () => {
    await fenceTenant(fx.owner, 'acme');
    const before = await notesOf('globex');
    await plain.forTenant(globex).query("INSERT INTO notes (body) VALUES ('g1')");
    await plain.forTenant(globex).transaction((tx) => tx.query("INSERT INTO notes (body) VALUES ('g2')"));
    for (let i = 0; i < 5; i++) await fast.forTenant(globex).query("INSERT INTO notes (body) VALUES ('g3')");
    expect(await notesOf('globex')).toBe(before + 7);
  });

  it('unfence lets the tenant write again', async () => {
    await fenceTenant(fx.owner, 'acme');
    expect(await codeOf(plain.forTenant(acme).query("INSERT INTO notes (body) VALUES ('x')"))).toBe('PLACEMENT_PAUSED');
    await unfenceTenant(fx.owner, 'acme');
    expect(await isFenced(fx.owner, 'acme')).toBe(false);
    const before = await notesOf('acme');
    await plain.forTenant(acme).query("INSERT INTO notes (body) VALUES ('back')");
    expect(await notesOf('acme')).toBe(before + 1);
  });

  it("exclusiveTransaction (the mover's own writes, as the schema owner) passes the fence; the app role cannot", async () => {
    await fenceTenant(fx.owner, 'acme');
    const before = await notesOf('acme');
    const asOwner = scopedPool(
      { connectionString: fx.db.ownerUrl, max: 1 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler },
    );
    try {
      await exclusiveTransaction(asOwner, acme, (tx) => tx.query("INSERT INTO notes (body) VALUES ('mover')"));
    } finally {
      await asOwner.end();
    }
    expect(await notesOf('acme')).toBe(before + 1);
    expect(
      await codeOf(exclusiveTransaction(plain, acme, (tx) => tx.query("INSERT INTO notes (body) VALUES ('x')"))),
    ).toBe('PG_QUERY_FAILED');
    expect(await notesOf('acme')).toBe(before + 1);
  });
});

describe('fenceTenant waits for what was admitted before it', () => {
  it('waits for an in-flight transaction of the tenant; meanwhile new ones are refused and other tenants are not', async () => {
    const before = await notesOf('acme');
    const inflight = holdTransaction(plain.forTenant(acme), (tx) =>
      tx.query("INSERT INTO notes (body) VALUES ('admitted before the fence')"),
    );
    await inflight.bound;
    const fence = fenceTenant(fx.owner, 'acme', { lockTimeoutMs: 10_000 });
    const f = settled(fence);
    await sleep(400);
    expect(f.done).toBe(false);
    // while the fence waits: acme's new writes are refused at once, globex writes
    expect(await codeOf(plain.forTenant(acme).query("INSERT INTO notes (body) VALUES ('x')"))).toBe('PLACEMENT_PAUSED');
    await plain.forTenant(globex).query("INSERT INTO notes (body) VALUES ('g')");
    inflight.release();
    await inflight.done;
    await fence;
    expect(await notesOf('acme')).toBe(before + 1);
  });

  it('gives up after lockTimeoutMs with PG_FENCE_TIMEOUT, and the fence row stays', async () => {
    const inflight = holdTransaction(plain.forTenant(acme), (tx) => tx.query('SELECT 1'));
    await inflight.bound;
    expect(await codeOf(fenceTenant(fx.owner, 'acme', { lockTimeoutMs: 200 }))).toBe('PG_FENCE_TIMEOUT');
    expect(await isFenced(fx.owner, 'acme')).toBe(true);
    inflight.release();
    await inflight.done;
  });

  it('waits for a session-bound hot lane, which the fence closes', async () => {
    await acmeHot();
    for (let i = 0; i < 3; i++) await fast.forTenant(acme).query('SELECT 1');
    const t0 = Date.now();
    await fenceTenant(fx.owner, 'acme', { lockTimeoutMs: 5000 });
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(await codeOf(fast.forTenant(acme).query("INSERT INTO notes (body) VALUES ('x')"))).toBe('PLACEMENT_PAUSED');
  });
});

describe('the client retries a fenced bind once, on a fresh placement', () => {
  it('invalidates the cached placement and runs the transaction callback at most once', async () => {
    await fenceTenant(fx.owner, 'acme');
    let invalidated = 0;
    const resolver = Object.assign(() => ({ tier: 'shared' as const }), {
      invalidate: (id: string) => {
        expect(id).toBe('acme');
        invalidated++;
      },
    });
    const placed = scopedPool(
      { connectionString: fx.db.appUrl, max: 2 },
      { bindingKey: fx.bindingKey, pooler: fx.pooler, placement: resolver },
    );
    try {
      let calls = 0;
      const code = await codeOf(
        placed.forTenant(acme).transaction(async (tx) => {
          calls++;
          await tx.query("INSERT INTO notes (body) VALUES ('x')");
        }),
      );
      // the resolver still answers the fenced place: the retry is refused too, and nothing ran
      expect(code).toBe('PLACEMENT_PAUSED');
      expect(calls).toBe(0);
      expect(invalidated).toBe(1);
    } finally {
      await placed.end();
    }
  });
});

describe('upgrade path', () => {
  it('fenceTenant refuses a database whose tenantscope predates fences; installTenantScope upgrades it', async () => {
    await fx.owner.query('DROP TABLE tenantscope.fence');
    expect(await codeOf(fenceTenant(fx.owner, 'initech'))).toBe('PG_FENCE_UNSUPPORTED');
    await installTenantScope(fx.owner, { appRole: fx.db.appRole, bindingKey: fx.bindingKey });
    await fenceTenant(fx.owner, 'initech');
    expect(await isFenced(fx.owner, 'initech')).toBe(true);
    await unfenceTenant(fx.owner, 'initech');
  });
});
