/**
 * qdrant-placement: what resolving the placement on every operation costs the Qdrant client.
 * Sides (same tenant, server, HTTP agent and concurrency):
 *   - scoped, sync resolver (the default shared path): the baseline;
 *   - scoped, the placement registry's resolver with a warm cache (the real `registry.resolver`
 *     of @tenantscope/postgres, cacheMs 10 min so every call is a hit): our path;
 *   - scoped, an always-async resolver (a Promise per resolve, the worst case of a cache hit);
 *   - the raw QdrantClient, for reference (no scoping at all).
 * Two parts: (1) end to end against Qdrant (a query, nearest 3; an upsert of 1 point: ownership
 * scroll, write, check); (2) the client-side cost alone, the same scoped clients over a client
 * that answers from memory (a query: one resolve; a delete by id: a write, so two resolves), where
 * server time and machine noise do not hide microseconds. Warm-up of every side, then interleaved
 * rounds with a rotating order; prints the median per call of each side and the ratio to sync.
 *
 *   source /work/notes/s3/services.env && node test/bench/qdrant-placement/main.ts
 *   (QDRANT_URL (+ QDRANT_API_KEY) for a real server, else the in-process QdrantProtocolDouble;
 *   PG15_URL for the registry; BENCH_ROUNDS default 6; BENCH_CALLS per round and side: 200
 *   queries, a quarter as many upserts; BENCH_LOCAL_CALLS 20000; BENCH_CONCURRENCY 8)
 */
import { performance } from 'node:perf_hooks';
import { pg, placementRegistry } from '@tenantscope/postgres';
import { QdrantClient, type QdrantPlacement, registryPlacement, scopedQdrant } from '@tenantscope/qdrant';
import { createTestIssuer, QdrantProtocolDouble } from '@tenantscope/testkit';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CALLS = Number(process.env.BENCH_CALLS ?? 200);
const LOCAL_CALLS = Number(process.env.BENCH_LOCAL_CALLS ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const pgUrl = process.env.PG15_URL;
if (!pgUrl) {
  console.log(
    'qdrant-placement: SKIPPED: needs PG15_URL for the placement registry (source /work/notes/s3/services.env)',
  );
  process.exit(0);
}
const double = process.env.QDRANT_URL ? undefined : await QdrantProtocolDouble.start();
const url = process.env.QDRANT_URL ?? (double as QdrantProtocolDouble).url;
const raw = new QdrantClient({ url, apiKey: process.env.QDRANT_API_KEY, checkCompatibility: false });
const collection = `bench_placement_${Date.now().toString(36)}`;
await raw.createCollection(collection, { vectors: { size: 4, distance: 'Cosine' } });

const pool = new pg.Pool({ connectionString: pgUrl, max: 2 });
const schema = `bench_placement_${Date.now().toString(36)}`;
const registry = placementRegistry({ pool, schema, cacheMs: 600_000 });
await registry.migrate();

const acme = await (await createTestIssuer()).tenant('acme');
const placed: QdrantPlacement = { tier: 'shared', kind: 'shared', collection };
const sidesOver = (client: QdrantClient) => ({
  sync: scopedQdrant(client, { collection }).forTenant(acme),
  registry: scopedQdrant(client, {
    collection,
    placementResolver: registry.resolver('qdrant', registryPlacement(collection)),
  }).forTenant(acme),
  async: scopedQdrant(client, { collection, placement: async () => placed }).forTenant(acme),
});
const sides = sidesOver(raw);
let id = 0;
await sides.sync.upsert({
  points: Array.from({ length: 200 }, () => ({ id: ++id, vector: [Math.random(), 1, 0.5, id % 3] })),
});

type Call = () => Promise<unknown>;
interface Side {
  name: string;
  ops: Record<string, Call>;
}
const v = [0.3, 1, 0.5, 1];
const endToEnd: Side[] = [
  ...Object.entries(sides).map(([name, t]) => ({
    name: `scoped, ${name} resolver`,
    ops: {
      query: () => t.query({ query: v, limit: 3 }),
      upsert: () => t.upsert({ points: [{ id: ++id, vector: [1, id % 5, 0.5, 1] }] }),
    },
  })),
  {
    name: 'raw QdrantClient (reference)',
    ops: {
      query: () => raw.query(collection, { query: v, limit: 3, filter: { must: [] } }),
      upsert: () =>
        raw.upsert(collection, {
          wait: true,
          points: [{ id: ++id, vector: [1, 2, 3, 4], payload: { tenant_id: 'acme' } }],
        }),
    },
  },
];
/** A QdrantClient that answers from memory: what is left is the scoped client's own work. */
const memory = {
  query: async () => ({ points: [] }),
  delete: async () => ({ operation_id: 1, status: 'completed' }),
  versionInfo: async () => ({ title: 'memory', version: '1.19.0' }),
} as unknown as QdrantClient;
const local: Side[] = [
  ...Object.entries(sidesOver(memory)).map(([name, t]) => ({
    name: `scoped, ${name} resolver`,
    ops: { query: () => t.query({ query: v, limit: 3 }), delete: () => t.delete({ points: [1] }) },
  })),
  {
    name: 'memory client (reference)',
    ops: {
      query: () => memory.query(collection, { query: v, limit: 3 }),
      delete: () => memory.delete(collection, { points: [1] }),
    },
  },
];

async function time(call: Call, calls: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < calls) await call();
    }),
  );
  return (performance.now() - t0) / calls;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Warm-up of every side, then interleaved rounds (rotating order); prints medians and ratios to the first side. */
async function compare(title: string, list: Side[], op: string, calls: number, unit: 'ms' | 'µs'): Promise<void> {
  for (const s of list) await time(s.ops[op] as Call, calls); // warm-up: sockets, JIT, caches, the version check
  const times = list.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < list.length; k++) {
      const i = (r + k) % list.length;
      times[i]?.push(await time((list[i] as Side).ops[op] as Call, calls));
    }
  }
  const m = times.map(median);
  const base = m[0] as number;
  list.forEach((s, i) => {
    const x = m[i] as number;
    const shown = unit === 'ms' ? x.toFixed(3) : (x * 1000).toFixed(2);
    console.log(
      `${title} ${op.padEnd(6)} ${s.name.padEnd(30)} ${shown} ${unit}/call  ratio to sync ${(x / base).toFixed(3)}`,
    );
  });
}

console.log(
  `qdrant-placement: ${ROUNDS} interleaved rounds, ${CONCURRENCY} in flight, ${double ? 'in-process QdrantProtocolDouble' : url}, Node ${process.version}`,
);
console.log(`(1) end to end: ${CALLS} queries / ${Math.ceil(CALLS / 4)} upserts per round and side`);
await compare('e2e', endToEnd, 'query', CALLS, 'ms');
await compare('e2e', endToEnd, 'upsert', Math.ceil(CALLS / 4), 'ms');
console.log(`(2) client side only (answers from memory): ${LOCAL_CALLS} calls per round and side`);
await compare('local', local, 'query', LOCAL_CALLS, 'µs');
await compare('local', local, 'delete', LOCAL_CALLS, 'µs');
await raw.deleteCollection(collection);
await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
await registry.close();
await pool.end();
await double?.close();
