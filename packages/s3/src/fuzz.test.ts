/**
 * Key fuzz through the scoped client with the shared credentials: see fuzz-support.ts.
 */
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { runKeyFuzz, TARGET } from './fuzz-support.ts';
import { type S3Fixture, s3Fixture } from './test-support.ts';

let f: S3Fixture;
beforeAll(async () => {
  f = await s3Fixture('fuzz');
  const issuer = await createTestIssuer();
  const acme2 = await issuer.tenant('acme2');
  await f.s3.forTenant(f.globex).put('secret/plan.txt', 'globex canary');
  await f.s3.forTenant(acme2).put('canary.txt', 'acme2 canary');
});
afterAll(async () => f?.cleanup());

describe('key fuzz', () => {
  it(`${TARGET} hostile keys: each refused with a typed error or stored inside the tenant; 0 escapes`, {
    timeout: 240_000,
  }, async () => {
    await runKeyFuzz(f, f.s3.forTenant(f.acme));
  });
});
