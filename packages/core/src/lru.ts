/** A small Map-based LRU with a hard maximum. `onEvict` sees each entry pushed out. */
export class BoundedLru<K, V> {
  readonly #map = new Map<K, V>();
  readonly max: number;
  readonly #onEvict: ((key: K, value: V) => void) | undefined;
  constructor(max: number, onEvict?: (key: K, value: V) => void) {
    this.max = max;
    this.#onEvict = onEvict;
    if (!Number.isInteger(max) || max <= 0) throw new RangeError('max must be a positive integer');
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.max) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      const v = this.#map.get(oldest.value) as V;
      this.#map.delete(oldest.value);
      this.#onEvict?.(oldest.value, v);
    }
  }
  delete(key: K): boolean {
    return this.#map.delete(key);
  }
  values(): IterableIterator<V> {
    return this.#map.values();
  }
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries();
  }
}
