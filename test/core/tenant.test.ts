import { assertTenant, isTenant, Tenant } from '@tenantscope/core';
import { createTestIssuer } from '@tenantscope/testkit';
import { describe, expect, it } from 'vitest';

describe('Tenant brand', () => {
  it('cannot be constructed, copied, or faked outside the verifier', async () => {
    const real = await (await createTestIssuer()).tenant('acme');
    expect(isTenant(real)).toBe(true);
    expect(() => new Tenant(Symbol('tenantscope.tenant.construct'), real)).toThrow(/verifier/);
    const copies = [
      { ...real },
      Object.create(Tenant.prototype, { id: { value: 'acme' } }),
      JSON.parse(JSON.stringify(real)),
      structuredClone({ id: 'acme', subject: 'x' }),
      'acme',
      null,
    ];
    for (const c of copies) {
      expect(isTenant(c)).toBe(false);
      expect(() => assertTenant(c)).toThrow(expect.objectContaining({ code: 'NOT_A_TENANT' }));
    }
    expect(Object.isFrozen(real)).toBe(true);
    expect(JSON.stringify(real)).toBe('{"tenant_id":"acme","subject":"agent-acme"}');
  });
});
