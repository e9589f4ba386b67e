/** The shared adapter contract's isolation suite (`@tenantscope/testkit/adapter`) on Qdrant, plus the deprecated names. */
import type { Schemas } from '@qdrant/js-client-rest';
import { testAdapter } from '@tenantscope/testkit/adapter';
import { describe, expect, it } from 'vitest';
import { QDRANT_ERROR_CODES, qdrantError, type TenantQdrant } from './index.ts';
import { createHarness, FIELD, vec } from './testing/harness.ts';

testAdapter<TenantQdrant, Schemas['Record']>('qdrant', async () => {
  const h = await createHarness({}, false);
  const text = (p: { payload?: Record<string, unknown> | null }) => String(p.payload?.text ?? '');
  return {
    adapter: h.scoped,
    tenants: [h.acme, h.globex],
    globalKeys: true,
    keys: (n) => Array.from({ length: n }, (_, i) => String(i + 1)),
    put: async (q, key, value) => {
      await q.upsert({ points: [{ id: Number(key), vector: vec(Number(key)), payload: { text: value } }] });
    },
    get: async (q, key) => {
      const [p] = await q.retrieve({ ids: [Number(key)], with_payload: true });
      return p ? text(p) : undefined;
    },
    list: async (q) => (await q.scroll({ limit: 1000 })).points.map((p) => String(p.id)),
    remove: async (q, key) => {
      await q.delete({ points: [Number(key)] });
    },
    raw: async () =>
      (await h.raw.scroll(h.collection, { limit: 1000, with_payload: true })).points.map((p) => ({
        tenant: String(p.payload?.[FIELD]),
        key: String(p.id),
        value: text(p),
      })),
    itemKey: (p) => String(p.id),
    itemValue: (p) => text(p),
    close: () => h.close(),
  };
});

describe('contract names', () => {
  it('qdrantError builds errors from QDRANT_ERROR_CODES', () => {
    const e = qdrantError('QDRANT_POINT_ID_CONFLICT', 'id taken');
    expect([e.code, e.status]).toEqual(['QDRANT_POINT_ID_CONFLICT', QDRANT_ERROR_CODES.QDRANT_POINT_ID_CONFLICT]);
  });
});
