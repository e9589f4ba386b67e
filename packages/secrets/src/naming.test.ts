import { createTestIssuer } from '@tenantscope/testkit';
import { describe, expect, it } from 'vitest';
import { assertSecretName, defaultNaming, resolvePath, SECRET_NAME_PATTERN } from './naming.ts';
import { HOSTILE_NAMES } from './test-helpers.ts';

describe('secret names', () => {
  it('accepts plain lowercase names', () => {
    for (const n of ['mail_api_key', 'stripe-key', 'k', 'a'.repeat(64), 'key2']) {
      expect(() => assertSecretName(n)).not.toThrow();
    }
  });

  it('refuses every hostile spelling with SECRET_NAME_INVALID, without echoing it', () => {
    for (const n of HOSTILE_NAMES) {
      let err: unknown;
      try {
        assertSecretName(n);
      } catch (e) {
        err = e;
      }
      expect(err, `accepted ${JSON.stringify(String(n))}`).toMatchObject({ code: 'SECRET_NAME_INVALID', status: 400 });
      if (typeof n === 'string' && n.length > 3) expect((err as Error).message).not.toContain(n);
    }
  });

  it('the pattern is ASCII-only and has no separator', () => {
    expect(SECRET_NAME_PATTERN.test('a/b')).toBe(false);
    expect(SECRET_NAME_PATTERN.test('a.b')).toBe(false);
    expect(SECRET_NAME_PATTERN.test('ä')).toBe(false);
  });

  it('default naming puts the name under the tenant prefix; a bad naming output is refused', async () => {
    const issuer = await createTestIssuer();
    const acme = await issuer.tenant('acme');
    expect(resolvePath(defaultNaming, acme, 'mail_api_key')).toBe('tenants/acme/mail_api_key');
    expect(() => resolvePath(() => 'tenants/acme/../globex/x', acme, 'x')).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    expect(() => resolvePath(() => '', acme, 'x')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });
});
