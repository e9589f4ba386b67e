/**
 * The suite catches leaks: an in-memory toy adapter passes it, and each deliberately leaky variant
 * of the toy fails it with an AdapterCheckFailure.
 */
import {
  assertTenant,
  type ResourceProvider,
  type ScopedAdapter,
  type StoreCount,
  type Tenant,
  TenantScopeError,
} from '@tenantscope/core';
import { describe, expect, it } from 'vitest';
import { createTestIssuer } from '../tokens.ts';
import { AdapterCheckFailure, type AdapterHarness, caught, runAdapterChecks, testAdapter } from './index.ts';

type Leak =
  | 'none'
  | 'unguarded-forTenant'
  | 'unguarded-tenantData'
  | 'list-all'
  | 'get-falls-through'
  | 'write-through'
  | 'delete-through'
  | 'error-quotes-other'
  | 'untyped-error'
  | 'count-all'
  | 'export-all'
  | 'delete-all-tenants'
  | 'delete-leaves-one';

interface ToyHandle {
  put(key: string, value: string): void;
  get(key: string): string | undefined;
  list(): string[];
  remove(key: string): void;
}

type Item = { key: string; value: string };

/** An in-memory multi-tenant store: one map per tenant, or a leak chosen by `leak`. */
function toyAdapter(store: Map<string, Map<string, string>>, leak: Leak): ScopedAdapter<ToyHandle, Item> {
  const bucket = (id: string) => {
    const m = store.get(id) ?? new Map<string, string>();
    store.set(id, m);
    return m;
  };
  const owner = (key: string) => [...store].find(([, m]) => m.has(key));
  const handle = (id: string): ToyHandle => ({
    put(key, value) {
      const other = owner(key);
      if (leak === 'write-through' && other && other[0] !== id) other[1].set(key, value);
      else if (leak === 'error-quotes-other' && other && other[0] !== id) {
        throw new TenantScopeError('INVALID_ARGUMENT', `key taken by ${other[1].get(key)}`);
      } else if (leak === 'untyped-error' && other && other[0] !== id) throw new Error('conflict');
      else bucket(id).set(key, value);
    },
    get(key) {
      const own = bucket(id).get(key);
      if (own === undefined && leak === 'get-falls-through') return owner(key)?.[1].get(key);
      return own;
    },
    list() {
      return leak === 'list-all' ? [...store.values()].flatMap((m) => [...m.keys()]) : [...bucket(id).keys()];
    },
    remove(key) {
      if (leak === 'delete-through' && !bucket(id).has(key)) owner(key)?.[1].delete(key);
      else bucket(id).delete(key);
    },
  });
  const count = (id: string): StoreCount => {
    const n = leak === 'count-all' ? [...store.values()].reduce((s, m) => s + m.size, 0) : bucket(id).size;
    return { store: 'toy', total: n, parts: { items: n } };
  };
  const check = (t: Tenant, what: string) => {
    if (leak === 'unguarded-forTenant' && what === 'forTenant') return;
    if (leak === 'unguarded-tenantData' && what === 'tenantData') return;
    assertTenant(t, what);
  };
  return {
    forTenant(t) {
      check(t, 'forTenant');
      return handle(t.id);
    },
    provider(): ResourceProvider<ToyHandle> {
      return { forCall: (call) => this.forTenant(call.tenant) };
    },
    tenantData(t) {
      check(t, 'tenantData');
      return {
        store: 'toy',
        count: async () => count(t.id),
        async *export() {
          const source = leak === 'export-all' ? [...store.values()] : [bucket(t.id)];
          for (const m of source) for (const [key, value] of m) yield { key, value };
        },
        async delete() {
          const before = count(t.id);
          if (leak === 'delete-all-tenants') for (const m of store.values()) m.clear();
          else if (leak === 'delete-leaves-one') {
            const keep = [...bucket(t.id)][0];
            bucket(t.id).clear();
            if (keep) bucket(t.id).set(keep[0], keep[1]);
          } else bucket(t.id).clear();
          return { before, after: count(t.id) };
        },
      };
    },
  };
}

async function toyHarness(leak: Leak): Promise<AdapterHarness<ToyHandle, Item>> {
  const issuer = await createTestIssuer();
  const store = new Map<string, Map<string, string>>();
  return {
    adapter: toyAdapter(store, leak),
    tenants: [await issuer.tenant('acme'), await issuer.tenant('globex')],
    put: async (h, k, v) => h.put(k, v),
    get: async (h, k) => h.get(k),
    list: async (h) => h.list(),
    remove: async (h, k) => h.remove(k),
    raw: async () => [...store].flatMap(([tenant, m]) => [...m].map(([key, value]) => ({ tenant, key, value }))),
    itemKey: (i) => i.key,
    itemValue: (i) => i.value,
    // the write leaks need keys that exist in one tenant only
    globalKeys: leak === 'write-through' || leak === 'error-quotes-other' || leak === 'untyped-error',
  };
}

testAdapter('in-memory toy', () => toyHarness('none'));

describe('the suite fails a leaky adapter', () => {
  it('passes the honest toy as plain functions too', async () => {
    await expect(runAdapterChecks(await toyHarness('none'))).resolves.toBeUndefined();
  });

  const leaks: Leak[] = [
    'unguarded-forTenant',
    'unguarded-tenantData',
    'list-all',
    'get-falls-through',
    'write-through',
    'delete-through',
    'error-quotes-other',
    'untyped-error',
    'count-all',
    'export-all',
    'delete-all-tenants',
    'delete-leaves-one',
  ];
  for (const leak of leaks) {
    it(`catches ${leak}`, async () => {
      const err = await caught(async () => runAdapterChecks(await toyHarness(leak)));
      expect(err, `${leak} passed the suite`).toBeInstanceOf(AdapterCheckFailure);
    });
  }
});
