/**
 * `@tenantscope/testkit/adapter`: the adapter contract's isolation suite. Any adapter (this repo's
 * four, or a third party's) runs it in a few lines against its real store:
 *
 * ```ts
 * testAdapter('my-store', async () => ({ adapter, tenants: [acme, globex], put, get, list, remove, raw, itemKey, itemValue }));
 * ```
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ADAPTER_CHECKS, type AdapterCheckContext, type AdapterHarness, seedTenants } from './checks.ts';

export {
  ADAPTER_CHECKS,
  type AdapterCheckContext,
  AdapterCheckFailure,
  type AdapterHarness,
  caught,
  checkDeleteOnlyTenant,
  checkReadsIsolated,
  checkRefusesForgedTenants,
  checkWritesIsolated,
  expectSafeError,
  forgedTenants,
  type RawItem,
  runAdapterChecks,
  STABLE_CODE,
  seedTenants,
} from './checks.ts';

export interface TestAdapterOptions {
  /** Per-check timeout in ms. Default 60000. */
  timeoutMs?: number;
}

/**
 * Registers the contract suite as vitest tests: `setup` builds the harness once (its tenants must
 * have no items yet), the suite seeds both tenants, then runs every check of `ADAPTER_CHECKS` in
 * order. `close` runs after the last one.
 */
export function testAdapter<Handle, Item>(
  name: string,
  setup: () => Promise<AdapterHarness<Handle, Item>>,
  options: TestAdapterOptions = {},
): void {
  describe(`adapter contract: ${name}`, () => {
    let harness: AdapterHarness<Handle, Item> | undefined;
    let ctx: AdapterCheckContext<Handle, Item> | undefined;
    beforeAll(async () => {
      harness = await setup();
      ctx = await seedTenants(harness);
    }, options.timeoutMs ?? 60_000);
    afterAll(async () => {
      await harness?.close?.();
    });
    for (const [title, check] of Object.entries(ADAPTER_CHECKS)) {
      it(
        title,
        async () => {
          if (!ctx) throw new Error('the adapter harness did not start');
          await check(ctx as AdapterCheckContext<unknown, unknown>);
        },
        options.timeoutMs ?? 60_000,
      );
    }
  });
}
