/**
 * The tenant-field guard against every spelling of a payload path Qdrant accepts. A fixed corpus
 * of hostile spellings, then a seeded fuzz over the grammar's alphabet checked against an
 * independent oracle (a path names the tenant field first exactly when it starts with
 * `tenant_id` or `"tenant_id"` followed by the end, `.` or `[`).
 */
import { describe, expect, it } from 'vitest';
import { parseJsonPath } from './json-path.ts';
import { checkNotTenantPath } from './scope.ts';
import { TENANT_PATHS } from './testing/paths.ts';

const F = 'tenant_id';
const codeOf = (p: string): string => {
  try {
    checkNotTenantPath(p, F, 'key');
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe('Qdrant payload path grammar', () => {
  it('parses the grammar as Qdrant 1.19 does', () => {
    expect(parseJsonPath('foo[1][50].bar-baz[]."qux[.]quux"')).toEqual({
      firstKey: 'foo',
      rest: [{ index: 1n }, { index: 50n }, { key: 'bar-baz' }, { all: true }, { key: 'qux[.]quux' }],
    });
    expect(parseJsonPath('"tenant_id"')).toEqual({ firstKey: 'tenant_id', rest: [] });
    expect(parseJsonPath('"a.b"')).toEqual({ firstKey: 'a.b', rest: [] });
    expect(parseJsonPath('ünïcode_1')).toEqual({ firstKey: 'ünïcode_1', rest: [] });
    for (const bad of ['', ' a', 'a ', 'a.', '.a', '[0]', 'a[', 'a[x]', 'a[-1]', '"a', 'a"', '"a\\"b"', 'a..b']) {
      expect(parseJsonPath(bad)).toBeUndefined();
    }
    expect(parseJsonPath('a[18446744073709551616]')).toBeUndefined(); // past usize
  });

  it.each(TENANT_PATHS)('refuses %s', (p) => {
    expect(codeOf(p)).toBe('QDRANT_TENANT_FIELD');
  });

  it('allows keys that only look like the tenant field, refuses what Qdrant cannot parse', () => {
    for (const p of ['"tenant_id.x"', 'tenant_idx', 'tenant-id', 'x.tenant_id', '"x".tenant_id', '"tenant_id "']) {
      expect(codeOf(p)).toBe('ok');
    }
    for (const p of ['"tenant_id', 'tenant_id.', 'tenant_id[', ' tenant_id', 'tenant_id\\', '"tenant\\_id"']) {
      expect(codeOf(p)).toBe('QDRANT_POINT_INVALID');
    }
  });

  it('fuzz: no accepted path names the tenant field first (20 000 seeded cases)', () => {
    const alphabet = [
      't',
      'e',
      'n',
      'a',
      'i',
      'd',
      '_',
      '-',
      '"',
      '.',
      '[',
      ']',
      '0',
      '9',
      '\\',
      ' ',
      'é',
      F,
      `"${F}"`,
    ];
    let seed = 0x2f6e2b1;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const oracle = /^(tenant_id|"tenant_id")(?=$|[.[])/;
    let tenant = 0;
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      let p = '';
      const len = 1 + rnd(6);
      for (let j = 0; j < len; j++) p += alphabet[rnd(alphabet.length)];
      const code = codeOf(p);
      if (oracle.test(p)) {
        tenant++;
        expect(code, p).not.toBe('ok');
      }
      if (code === 'ok') {
        accepted++;
        expect(parseJsonPath(p)?.firstKey, p).not.toBe(F);
      }
    }
    // the corpus really exercises both sides
    expect(tenant).toBeGreaterThan(500);
    expect(accepted).toBeGreaterThan(500);
  });
});
