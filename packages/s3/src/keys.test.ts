import { describe, expect, it } from 'vitest';
import { checkKey, keyProblem, MAX_KEY_BYTES } from './keys.ts';

describe('the key rule', () => {
  const refused: [string, string][] = [
    ['', 'empty'],
    ['/a', 'leading_slash'],
    ['a//b', 'empty_segment'],
    ['a/', 'empty_segment'],
    ['.', 'dot_segment'],
    ['..', 'dot_segment'],
    ['a/./b', 'dot_segment'],
    ['a/../b', 'dot_segment'],
    ['a\\b', 'backslash'],
    ['a\u0000b', 'control_character'],
    ['a\u001fb', 'control_character'],
    ['a\u007fb', 'control_character'],
    ['a\u0085b', 'control_character'],
    ['a\ufffeb', 'noncharacter'],
    ['a\ud800b', 'lone_surrogate'],
    ['a\udc00', 'lone_surrogate'],
    ['%2e%2e/x', 'percent_decodes_to_unsafe'],
    ['a/%2E/b', 'percent_decodes_to_unsafe'],
    ['..%2fx', 'percent_decodes_to_unsafe'],
    ['a%2f%2fb', 'percent_decodes_to_unsafe'],
    ['%2fetc', 'percent_decodes_to_unsafe'],
    ['a%5cb', 'percent_decodes_to_unsafe'],
    ['a%00b', 'percent_decodes_to_unsafe'],
    ['%252e%252e/x', 'percent_decodes_to_unsafe'],
    ['%25252e%25252e/x', 'percent_decodes_to_unsafe'],
    ['%c0%ae%c0%ae/x', 'percent_decodes_to_invalid_utf8'],
    ['%e0%80%ae/x', 'percent_decodes_to_invalid_utf8'],
    ['%ed%a0%80', 'percent_decodes_to_invalid_utf8'],
    ['\uff0e\uff0e/x', 'normalizes_to_unsafe'],
    ['a\uff0fb\uff0f\uff0f', 'normalizes_to_unsafe'],
    ['\u2025/x', 'normalizes_to_unsafe'],
    ['a\uff3cb', 'normalizes_to_unsafe'],
    ['\uff05\uff12\uff45\uff05\uff12\uff45/x', 'normalizes_to_unsafe'],
    ['%ef%bc%8e%ef%bc%8e/x', 'percent_decodes_to_unsafe'],
  ];
  it.each(refused)('refuses %j (%s)', (key, reason) => {
    const p = keyProblem(key);
    // Some keys break more than one part of the rule; the first check that fires is reported.
    expect(p).toBeDefined();
    if (!reason.startsWith('percent') && !reason.startsWith('normalizes')) expect(p).toBe(reason);
    else expect(['percent_decodes_to_unsafe', 'percent_decodes_to_invalid_utf8', 'normalizes_to_unsafe']).toContain(p);
  });

  const accepted = [
    'a',
    'docs/report.pdf',
    '.hidden',
    '...',
    'a..b',
    'a/.b/..c',
    'report%20final.pdf',
    '100%.txt',
    '%zz',
    '%2',
    'a%2fb',
    '50%2e.txt',
    'ünïcödé/日本語/😀.txt',
    'e\u0301',
    'spaces are fine',
    'a+b=c&d?e#f',
  ];
  it.each(accepted)('accepts %j', (key) => {
    expect(keyProblem(key)).toBeUndefined();
  });

  it('counts the limit in bytes of UTF-8, with the tenant prefix', () => {
    const prefix = 'tenants/acme/';
    const room = MAX_KEY_BYTES - prefix.length;
    expect(keyProblem('a'.repeat(room), prefix.length)).toBeUndefined();
    expect(keyProblem('a'.repeat(room + 1), prefix.length)).toBe('too_long');
    expect(keyProblem('€'.repeat(Math.floor(room / 3)), prefix.length)).toBeUndefined();
    expect(keyProblem('€'.repeat(Math.floor(room / 3) + 1), prefix.length)).toBe('too_long');
    expect(keyProblem('😀'.repeat(Math.floor(room / 4) + 1), prefix.length)).toBe('too_long');
  });

  it('throws a typed 400 that does not echo the key', () => {
    try {
      checkKey('../globex/secret-name.txt');
      expect.unreachable();
    } catch (err) {
      const e = err as { code: string; status: number; message: string; details: { reason: string } };
      expect(e.code).toBe('S3_KEY_INVALID');
      expect(e.status).toBe(400);
      expect(e.details.reason).toBe('dot_segment');
      expect(e.message).not.toContain('secret-name');
    }
  });
});

describe('the %uXXXX decoding layer (found by the key fuzz)', () => {
  it.each(['%u002e%u002e/x', 'a/%u002E/b', '%u002e%u002e%2fglobex', 'a%u005cb', 'a%u0000b'])('refuses %j', (key) => {
    expect(keyProblem(key)).toBe('percent_decodes_to_unsafe');
  });
  it('accepts a harmless %u sequence', () => {
    expect(keyProblem('%u0041bc')).toBeUndefined();
  });
});
