/** The value cache on its own: keys, TTL edges, bounds, shared fetches and counters. No I/O. */
import { describe, expect, it } from 'vitest';
import { SecretCache } from './cache.ts';

function setup(opts: { ttl?: number; maxEntries?: number } = {}) {
  const clock = { now: 1_000 };
  const cache = new SecretCache({ ttl: opts.ttl ?? 100, maxEntries: opts.maxEntries ?? 10, now: () => clock.now });
  return { cache, clock };
}

/** A loader that counts its calls and answers after `release()` when deferred. */
function loader(value: string) {
  let calls = 0;
  const waiting: (() => void)[] = [];
  let deferred = false;
  const load = () => {
    calls++;
    if (!deferred) return Promise.resolve(value);
    return new Promise<string>((resolve) => waiting.push(() => resolve(value)));
  };
  return {
    load,
    get calls() {
      return calls;
    },
    defer() {
      deferred = true;
    },
    release() {
      for (const w of waiting.splice(0)) w();
    },
  };
}

describe('SecretCache', () => {
  it('serves a value for exactly ttl ms, then fetches again', async () => {
    const { cache, clock } = setup({ ttl: 100 });
    const l = loader('v1');
    expect(await cache.read('acme', 'k', {}, l.load)).toBe('v1');
    clock.now += 99;
    expect(await cache.read('acme', 'k', {}, l.load)).toBe('v1');
    expect(l.calls).toBe(1);
    clock.now += 1;
    await cache.read('acme', 'k', {}, l.load);
    expect(l.calls).toBe(2);
    expect(cache.stats()).toEqual({ hits: 1, misses: 2, fetches: 2, refreshes: 0, size: 1 });
  });

  it('never serves one tenant, name or version the value cached for another', async () => {
    const { cache } = setup();
    await cache.read('acme', 'k', {}, () => Promise.resolve('acme-value'));
    // tenant ids that share a prefix, a name that looks like a key separator, another version
    expect(await cache.read('acm', 'k', {}, () => Promise.resolve('acm-value'))).toBe('acm-value');
    expect(await cache.read('acme2', 'k', {}, () => Promise.resolve('acme2-value'))).toBe('acme2-value');
    expect(await cache.read('acme', 'k2', {}, () => Promise.resolve('k2-value'))).toBe('k2-value');
    expect(await cache.read('acme', 'k', { versionId: 'v-1' }, () => Promise.resolve('pinned'))).toBe('pinned');
    expect(await cache.read('acme', 'k', { versionStage: 'AWSPREVIOUS' }, () => Promise.resolve('prev'))).toBe('prev');
    expect(await cache.read('acme', 'k', {}, () => Promise.reject(new Error('not fetched')))).toBe('acme-value');
  });

  it('ttl 0 stores nothing, but concurrent reads still share one fetch', async () => {
    const { cache } = setup({ ttl: 0 });
    const l = loader('v');
    l.defer();
    const reads = [cache.read('acme', 'k', {}, l.load), cache.read('acme', 'k', {}, l.load)];
    l.release();
    expect(await Promise.all(reads)).toEqual(['v', 'v']);
    expect(l.calls).toBe(1);
    const again = loader('v');
    await cache.read('acme', 'k', {}, again.load);
    expect(again.calls).toBe(1);
    expect(cache.stats().size).toBe(0);
  });

  it('is bounded: past maxEntries the least recently used value is evicted', async () => {
    const { cache } = setup({ maxEntries: 3 });
    for (const n of ['a', 'b', 'c']) await cache.read('acme', n, {}, () => Promise.resolve(`${n}-value`));
    await cache.read('acme', 'a', {}, () => Promise.reject(new Error('a is cached'))); // a is now most recent
    await cache.read('acme', 'd', {}, () => Promise.resolve('d-value')); // evicts b
    expect(cache.stats().size).toBe(3);
    const b = loader('b-again');
    expect(await cache.read('acme', 'b', {}, b.load)).toBe('b-again');
    expect(b.calls).toBe(1);
  });

  it('a failed fetch is not cached and is not shared with a later read', async () => {
    const { cache } = setup();
    await expect(cache.read('acme', 'k', {}, () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await cache.read('acme', 'k', {}, () => Promise.resolve('up'))).toBe('up');
    expect(cache.stats().size).toBe(1);
  });

  it('refresh drops the value and fetches again; concurrent refreshes share one fetch', async () => {
    const { cache } = setup();
    await cache.read('acme', 'k', {}, () => Promise.resolve('old'));
    const l = loader('rotated');
    l.defer();
    const both = [cache.refresh('acme', 'k', l.load), cache.refresh('acme', 'k', l.load)];
    l.release();
    expect(await Promise.all(both)).toEqual(['rotated', 'rotated']);
    expect(l.calls).toBe(1);
    expect(await cache.read('acme', 'k', {}, () => Promise.reject(new Error('cached')))).toBe('rotated');
    expect(cache.stats().refreshes).toBe(2);
  });

  it('a slow older fetch never overwrites the value of a newer refresh', async () => {
    const { cache, clock } = setup({ ttl: 100 });
    const slow = loader('stale');
    slow.defer();
    const first = cache.read('acme', 'k', {}, slow.load);
    expect(await cache.refresh('acme', 'k', () => Promise.resolve('fresh'))).toBe('fresh');
    slow.release();
    expect(await first).toBe('stale');
    clock.now += 50;
    expect(await cache.read('acme', 'k', {}, () => Promise.reject(new Error('cached')))).toBe('fresh');
  });

  it('readMany sends one batch for the misses, serves hits and shares fetches in flight', async () => {
    const { cache } = setup();
    await cache.read('acme', 'a', {}, () => Promise.resolve('a-cached'));
    const inflight = loader('b-inflight');
    inflight.defer();
    const b = cache.read('acme', 'b', {}, inflight.load);
    const batches: string[][] = [];
    const many = cache.readMany(
      'acme',
      ['a', 'b', 'c', 'd'],
      (name) => `id/${name}`,
      (missing) => {
        batches.push(missing.map((m) => m.ref));
        return Promise.resolve(new Map(missing.map((m) => [m.ref, `${m.name}-batched`])));
      },
      (answer, _name, ref) => answer.get(ref) as string,
    );
    inflight.release();
    await b;
    expect(Object.fromEntries(await many)).toEqual({
      a: 'a-cached',
      b: 'b-inflight',
      c: 'c-batched',
      d: 'd-batched',
    });
    expect(batches).toEqual([['id/c', 'id/d']]);
    expect(await cache.read('acme', 'd', {}, () => Promise.reject(new Error('cached')))).toBe('d-batched');
    expect(cache.stats().fetches).toBe(3);
  });

  it('readMany fails as a whole when pick throws for one name, and caches nothing for it', async () => {
    const { cache } = setup();
    const many = cache.readMany(
      'acme',
      ['a', 'b'],
      (name) => name,
      () => Promise.resolve(new Map([['a', 'a-value']])),
      (answer, name) => {
        const v = answer.get(name);
        if (!v) throw new Error(`${name} missing`);
        return v;
      },
    );
    await expect(many).rejects.toThrow('b missing');
    expect(await cache.read('acme', 'b', {}, () => Promise.resolve('b-later'))).toBe('b-later');
  });

  it('dropTenant and dropName remove only their own keys, not a tenant whose id extends it', async () => {
    const { cache } = setup();
    for (const [t, n] of [
      ['acme', 'k'],
      ['acme', 'k2'],
      ['acme2', 'k'],
      ['globex', 'k'],
    ] as const) {
      await cache.read(t, n, {}, () => Promise.resolve(`${t}-${n}`));
    }
    await cache.read('acme', 'k', { versionId: 'v-1' }, () => Promise.resolve('pinned'));
    expect(cache.dropName('acme', 'k')).toBe(2);
    expect(cache.dropTenant('acme')).toBe(1);
    expect(cache.stats().size).toBe(2);
    expect(await cache.read('acme2', 'k', {}, () => Promise.reject(new Error('cached')))).toBe('acme2-k');
  });

  it('countFetch counts provider requests that bypass the cache', () => {
    const { cache } = setup();
    cache.countFetch();
    expect(cache.stats()).toEqual({ hits: 0, misses: 0, fetches: 1, refreshes: 0, size: 0 });
  });
});
