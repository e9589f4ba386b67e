/**
 * Key fuzz (shared by fuzz.test.ts and the vended-credential tests): at least 1,000 generated hostile keys (traversal, encodings, unicode, prefix
 * collisions, overlong, control characters, random hostile strings). acme writes each through the
 * scoped client. Each must be refused with a typed error, or land inside acme's prefix at exactly
 * `tenants/acme/<key>`. Afterwards the whole bucket is listed with the raw client: 0 escapes.
 */
import { posix } from 'node:path';
import { isTenantScopeError } from '@tenantscope/core';
import { expect } from 'vitest';
import type { TenantS3 } from './client.ts';
import { keyProblem } from './keys.ts';
import type { S3Fixture } from './test-support.ts';

export const SEED = Number(process.env.S3_FUZZ_SEED ?? 20261126);
export const TARGET = Number(process.env.S3_FUZZ_KEYS ?? 1200);

function mulberry32(a: number) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hostileKeys(seed: number, target: number): { key: string; family: string }[] {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const out: { key: string; family: string }[] = [];
  const add = (family: string, key: string) => out.push({ family, key });

  const dots = [
    '..',
    '.',
    '...',
    '%2e%2e',
    '%2E%2E',
    '.%2e',
    '%2e.',
    '%252e%252e',
    '%25252e%25252e',
    '%c0%ae%c0%ae',
    '%e0%80%ae%e0%80%ae',
    '%u002e%u002e',
    '\uff0e\uff0e',
    '\u2025',
    '\u2024\u2024',
    '\ufe52\ufe52',
    '.\u200b.',
    '..\u0000',
    '..;',
    '.. ',
    ' ..',
    '..%00',
    '..%20',
    '&#46;&#46;',
    '\u0962\u0962',
    '..\u0301',
  ];
  const seps = [
    '/',
    '\\',
    '//',
    '%2f',
    '%2F',
    '%5c',
    '%5C',
    '%252f',
    '%25252f',
    '\uff0f',
    '\u2215',
    '\u2044',
    '\uff3c',
    '%c0%af',
    '%e0%80%af',
    '/./',
    '\u0000/',
    ';/',
    '%u2215',
    '%ef%bc%8f',
  ];
  const targets = [
    'globex/secret/plan.txt',
    'tenants/globex/secret/plan.txt',
    'acme2/canary.txt',
    'canary.txt',
    'etc/passwd',
    'globex',
    '',
  ];

  // 1. Traversal: dot segments joined by separators, 1–4 levels deep, towards other tenants.
  for (const d of dots) {
    for (const s of seps) {
      const depth = 1 + Math.floor(rnd() * 4);
      add('traversal', `${Array(depth).fill(d).join(s)}${s}${pick(targets)}`);
    }
  }
  // 2. Encodings of a plain traversal, one to three layers of percent-encoding, mixed case.
  const enc = (s: string) =>
    [...s].map((c) => (rnd() < 0.6 ? `%${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join('');
  const encAll = (s: string) => s.replace(/%/g, '%25');
  for (let i = 0; i < 150; i++) {
    let k = enc(`../${pick(['', '../'])}${pick(targets) || 'x'}`);
    const layers = Math.floor(rnd() * 3);
    for (let l = 0; l < layers; l++) k = encAll(k);
    if (rnd() < 0.5) k = k.replace(/%([0-9a-f]{2})/g, (_, h: string) => `%${h.toUpperCase()}`);
    add('encoding', `${pick(['', 'docs/', 'a/b/'])}${k}`);
  }
  // 3. Unicode: compatibility forms, bidi and zero-width characters, lone surrogates, combining marks.
  const uni = [
    '\uff0e',
    '\uff0f',
    '\uff3c',
    '\u2024',
    '\u2025',
    '\u2026',
    '\u202e',
    '\u200b',
    '\u200d',
    '\ufeff',
    '\ud800',
    '\udfff',
    '\ud83d',
    '\ud83d\ude00',
    '\u0301',
    '\u0130',
    '\u212a',
    '\u00e9',
    'e\u0301',
    '\u1e9b\u0323',
    '\ufffd',
    '\ufffe',
    '\uffff',
    '\u2028',
    '\u00a0',
    '\u3000',
    '\ufe30',
    '\ufe19',
    '\u2e2e',
    '\u0660',
  ];
  for (let i = 0; i < 200; i++) {
    const parts = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () =>
      rnd() < 0.5 ? pick(uni) : pick(['.', '..', 'globex', 'a', '/', 'x.txt']),
    );
    add('unicode', parts.join(''));
  }
  // 4. Prefix collisions: keys that spell another tenant's prefix, or the prefix of `acme2`.
  for (const t of ['globex', 'acme2', 'acme', 'acme-corp', 'initech']) {
    for (const form of [
      `${t}/x`,
      `tenants/${t}/x`,
      `../${t}/x`,
      `../../tenants/${t}/x`,
      `/tenants/${t}/x`,
      `..//${t}/x`,
      `2/x`,
      `./${t}/x`,
      `${t}/../../x`,
      `%2e%2e%2f${t}%2fx`,
      `tenants%2f${t}%2fx`,
      `..\\${t}\\x`,
    ]) {
      add('prefix-collision', form);
    }
  }
  // 5. Overlong: around the 1,024-byte limit with 1-, 2-, 3- and 4-byte characters.
  const room = 1024 - 'tenants/acme/'.length;
  for (const ch of ['a', '\u00e9', '\u20ac', '\ud83d\ude00']) {
    const bytes = Buffer.byteLength(ch);
    for (const delta of [-1, 0, 1, 2, 50]) {
      const n = Math.max(1, Math.floor((room - 5 + delta * bytes) / bytes));
      add('overlong', `long/${ch.repeat(n)}`.slice(0, 5 + n * ch.length));
    }
  }
  add('overlong', `${'a/'.repeat(600)}x`);
  // 6. Every control character, in the middle and at the end.
  for (let c = 0; c <= 0x9f; c++) {
    if (c > 0x1f && c < 0x7f) continue;
    add('control', `ctl/a${String.fromCharCode(c)}b`);
    if (c % 4 === 0) add('control', `ctl/${String.fromCharCode(c)}/../x`);
  }
  // 7. Random strings over a hostile alphabet, until the target count is reached.
  const alphabet = [
    '.',
    '.',
    '/',
    '/',
    '\\',
    '%',
    '2',
    'e',
    'E',
    'f',
    'F',
    '5',
    'c',
    'a',
    '0',
    '\u0000',
    '\uff0e',
    '\uff0f',
    '\u2025',
    '~',
    ' ',
    '?',
    '#',
    '&',
    '=',
    '+',
    ':',
    ';',
    '*',
    '"',
    "'",
    '<',
    '>',
    '|',
    '\n',
    '\t',
    '\u00e9',
    '\ud800',
    'g',
  ];
  while (out.length < target) {
    const len = 1 + Math.floor(rnd() * 14);
    add('random', Array.from({ length: len }, () => pick(alphabet)).join(''));
  }
  return out;
}

/** Forms a decoding or normalising layer might turn a key into. */
function decodedForms(key: string): string[] {
  const forms = new Set<string>([key]);
  const tryDecode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  let cur = key;
  for (let i = 0; i < 5; i++) {
    cur = tryDecode(cur);
    forms.add(cur);
    forms.add(unescape(cur));
  }
  for (const f of [...forms]) {
    forms.add(f.normalize('NFKC'));
    forms.add(f.normalize('NFC'));
    forms.add(tryDecode(f.normalize('NFKC')));
    forms.add(f.replace(/\\/g, '/'));
  }
  return [...forms];
}

/**
 * Writes every hostile key as acme through `a` and checks, with the raw client, that nothing
 * landed outside `tenants/acme/`. `f` must hold a globex canary at `secret/plan.txt`.
 */
export async function runKeyFuzz(f: S3Fixture, a: TenantS3, label = ''): Promise<void> {
  const keys = hostileKeys(SEED, TARGET);
  expect(keys.length).toBeGreaterThanOrEqual(1000);
  const before = new Set(await f.allKeys());
  const counts = { generated: keys.length, refusedByRule: 0, storedInside: 0, refusedByServer: 0, untyped: 0 };
  const byFamily: Record<string, { refused: number; stored: number }> = {};
  const stored = new Set<string>();
  const untyped: string[] = [];
  const serverCodes: Record<string, number> = {};
  const serverRefused = new Set<string>();
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const { key, family } = keys[next++] as { key: string; family: string };
      byFamily[family] ??= { refused: 0, stored: 0 };
      const fam = byFamily[family];
      try {
        await a.put(key, `fuzz:${key.length}`);
        counts.storedInside++;
        fam.stored++;
        stored.add(key);
      } catch (err) {
        if (!isTenantScopeError(err)) {
          counts.untyped++;
          untyped.push(JSON.stringify(key));
        } else if (err.code === 'S3_KEY_INVALID') {
          counts.refusedByRule++;
          fam.refused++;
        } else {
          counts.refusedByServer++;
          serverRefused.add(key);
          const c = String(err.details?.s3Code ?? err.code);
          serverCodes[c] = (serverCodes[c] ?? 0) + 1;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));

  // Every stored key reads back through the scoped client (same key) and sits at prefix + key.
  for (const key of stored) {
    expect(await a.getText(key), JSON.stringify(key)).toBe(`fuzz:${key.length}`);
  }
  const after = await f.allKeys();
  const added = after.filter((k) => !before.has(k));
  const escapes = added.filter((k) => !k.startsWith('tenants/acme/'));
  const misplaced = added.filter((k) => k.startsWith('tenants/acme/') && !stored.has(k.slice('tenants/acme/'.length)));
  // No decoding layer turns an accepted key into a path outside the tenant.
  const decodingEscapes: string[] = [];
  for (const key of stored) {
    for (const form of decodedForms(key)) {
      const resolved = posix.normalize(`/tenants/acme/${form}`);
      if (!resolved.startsWith('/tenants/acme/')) decodingEscapes.push(JSON.stringify(key));
    }
  }
  // The canaries of the other tenants are untouched.
  expect(await f.s3.forTenant(f.globex).getText('secret/plan.txt')).toBe('globex canary');
  const result = {
    seed: SEED,
    ...counts,
    distinctKeys: new Set(keys.map((k) => k.key)).size,
    distinctStored: stored.size,
    objectsInBucketAfter: after.length,
    escapes: escapes.length,
    misplaced: misplaced.length,
    decodingEscapes: decodingEscapes.length,
    serverCodes,
    serverRefusedKeys: [...serverRefused]
      .slice(0, 10)
      .map((k) => `${JSON.stringify(k.slice(0, 24))}… (${Buffer.byteLength(k)} bytes)`),
    byFamily,
  };
  console.log(`[s3 key fuzz${label}] server ${f.conn.server}: ${JSON.stringify(result)}`);
  expect(untyped, 'untyped errors').toEqual([]);
  expect(escapes, 'objects outside tenants/acme/').toEqual([]);
  expect(misplaced, 'objects under tenants/acme/ at a key other than the one given').toEqual([]);
  expect(decodingEscapes, 'accepted keys a decoding layer turns into traversal').toEqual([]);
  expect(added.length).toBe(stored.size);
  expect(counts.refusedByRule + counts.storedInside + counts.refusedByServer).toBe(keys.length);
  // The same rule guards every operation: head, copy and delete refuse exactly the keys put refused.
  for (const { key } of keys) {
    const refusedByPut = keyProblem(key, 'tenants/acme/'.length) !== undefined;
    for (const op of [() => a.head(key), () => a.copy(key, 'fuzz-copy.txt'), () => a.presignGet(key)]) {
      let code = 'NO_ERROR';
      try {
        await op();
      } catch (err) {
        code = (err as { code?: string }).code ?? 'untyped';
      }
      expect(code === 'S3_KEY_INVALID', JSON.stringify(key)).toBe(refusedByPut);
    }
  }
  await a.delete('fuzz-copy.txt');
  // Every key the rule accepted reached the server; every key it refused was refused before any request.
  for (const { key } of keys) {
    const ruleAccepts = keyProblem(key, 'tenants/acme/'.length) === undefined;
    expect(ruleAccepts, JSON.stringify(key)).toBe(stored.has(key) || serverRefused.has(key));
  }
}
