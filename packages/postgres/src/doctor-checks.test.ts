/** The doctor's code table against its checks: every code a check (or side-channels.ts, or the pooler check) can emit is in DoctorProblemCode, and every code there has a check. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DOCTOR_CHECKS,
  DOCTOR_PROBLEM_CODES,
  type DoctorProblemCode,
  sideChannels,
  TENANT_DB_CODES,
} from './doctor-checks.ts';

const POOLER_CODES: readonly DoctorProblemCode[] = ['POOLER_MISMATCH', 'POOLER_NOT_SEEN'];

/** `code: 'X'` literals in a piece of source. */
function codeLiterals(source: string): string[] {
  return [...source.matchAll(/code:\s*["'`]([A-Z_]+)["'`]/g)].map((m) => m[1] as string);
}

const source = (file: string) => readFileSync(new URL(file, import.meta.url), 'utf8');

describe('DoctorProblemCode', () => {
  it('is exactly the codes the checks declare, each declared by one check', () => {
    const declared = [...DOCTOR_CHECKS.flatMap((c) => c.codes), ...POOLER_CODES, ...TENANT_DB_CODES];
    expect(new Set(declared).size).toBe(declared.length);
    expect([...declared].sort()).toEqual([...DOCTOR_PROBLEM_CODES].sort());
  });

  it('every code a check emits is one it declares, and each declared code is emitted there', () => {
    for (const check of DOCTOR_CHECKS) {
      const emitted = new Set(codeLiterals(check.run.toString()));
      for (const code of emitted) expect(check.codes, `${check.name} emits ${code}`).toContain(code);
      // the side-channel check passes on codes built in side-channels.ts (next test)
      if (check !== sideChannels) expect([...emitted].sort(), check.name).toEqual([...check.codes].sort());
    }
  });

  it('every code side-channels.ts, doctor-pooler.ts and doctor-tenants.ts emit is in the union (and in the side-channel check)', () => {
    const side = source('./side-channels.ts');
    const emitted = [
      ...codeLiterals(side),
      ...[...side.matchAll(/\['\w+', '([A-Z_]+)', /g)].map((m) => m[1] as string),
    ];
    expect(emitted).toEqual(expect.arrayContaining(['STATS_READABLE', 'SEQUENCE_USABLE']));
    for (const code of emitted) expect(sideChannels.codes, code).toContain(code);
    const pooler = codeLiterals(source('./doctor-pooler.ts'));
    expect(pooler.sort()).toEqual([...POOLER_CODES].sort());
    const tenantDbs = new Set(codeLiterals(source('./doctor-tenants.ts')));
    expect([...tenantDbs].sort()).toEqual([...TENANT_DB_CODES].sort());
  });

  it('the check list runs in report order', () => {
    expect(DOCTOR_CHECKS.map((c) => c.name)).toEqual([
      'role attributes',
      'privileged memberships',
      'installation',
      'tenant tables',
      'views over tenant tables',
      'temporary tables',
      'side channels',
      'schema create',
      'key binds',
    ]);
  });
});
