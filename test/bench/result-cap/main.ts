/**
 * result-cap: the cost of measuring a tool result against the byte cap (`jsonByteLength`, a walk
 * that stops at the cap and builds no string) next to its raw baseline, serialising the result
 * (`Buffer.byteLength(JSON.stringify(value))`, what the transport does anyway and the only way to
 * know the size without the walk). Three results: a typical 1 KB object, 900 KB of rows (under the
 * 1 MiB cap) and a 100 MB string (far over it). Same values for both sides, a full warm-up of
 * both, then interleaved rounds; prints the median time per measurement of each side and the ratio.
 *
 *   node test/bench/result-cap/main.ts        (BENCH_ROUNDS, default 7)
 */
import { performance } from 'node:perf_hooks';
import { DEFAULT_MAX_RESULT_BYTES, jsonByteLength } from '@tenantscope/core';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CAP = DEFAULT_MAX_RESULT_BYTES;

const rows = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `0193-${i}`, name: `Customer ${i}`, email: `c${i}@example.com`, n: i }));
const cases: { name: string; value: unknown; iterations: number }[] = [
  { name: '1 KB object', value: { rows: rows(12) }, iterations: 20_000 },
  { name: '900 KB of rows', value: { rows: rows(11_000) }, iterations: 40 },
  { name: '100 MB string', value: { data: Buffer.alloc(100_000_000, 'x').toString('latin1') }, iterations: 1 },
];

function ours(value: unknown): number {
  return jsonByteLength(value, CAP);
}
function baseline(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/** Mean ms per measurement over `iterations` calls. */
function time(fn: (v: unknown) => number, value: unknown, iterations: number): number {
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) sink += fn(value);
  const ms = (performance.now() - t0) / iterations;
  if (sink === -1) console.log(sink); // keep the result alive
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

console.log(`result-cap: ${ROUNDS} interleaved rounds, cap ${CAP} bytes, Node ${process.version}`);
for (const c of cases) {
  // Warm-up: both sides, same value, until the JIT has seen them.
  time(ours, c.value, c.iterations);
  time(baseline, c.value, c.iterations);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      a.push(time(ours, c.value, c.iterations));
      b.push(time(baseline, c.value, c.iterations));
    } else {
      b.push(time(baseline, c.value, c.iterations));
      a.push(time(ours, c.value, c.iterations));
    }
  }
  const o = median(a);
  const raw = median(b);
  console.log(
    `${c.name.padEnd(16)} jsonByteLength ${o.toFixed(4)} ms   JSON.stringify ${raw.toFixed(4)} ms   ratio ${(o / raw).toFixed(3)}   (size ${ours(c.value) === Number.POSITIVE_INFINITY ? `> cap` : `${ours(c.value)} B`})`,
  );
}
