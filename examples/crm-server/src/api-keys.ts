import { type RevocationStore, type TokenVerifier, withApiKeys } from '@tenantscope/core';
import { PostgresApiKeyAttemptLimiter, PostgresApiKeyStore, type pg } from '@tenantscope/postgres';

/**
 * `TENANTSCOPE_API_KEYS=1`: the server also accepts `Authorization: Bearer tsk_…` API keys made with
 * `tenantscope keys create` (table `<state schema>.api_keys`, beside the replica state; the pepper, if
 * any, in `TENANTSCOPE_API_KEY_PEPPER`). Unset, `jwt` is returned as is.
 */
export async function apiKeysFromEnv(
  jwt: TokenVerifier,
  pool: pg.Pool,
  revocations: RevocationStore,
  schema: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<TokenVerifier> {
  if (env.TENANTSCOPE_API_KEYS !== '1') return jwt;
  const store = new PostgresApiKeyStore(pool, { schema });
  await store.migrate();
  return withApiKeys(jwt, {
    store,
    revocations,
    // Failed attempts per key id counted in the table: the limit holds across replicas.
    attempts: new PostgresApiKeyAttemptLimiter(pool, { schema }),
    pepper: env.TENANTSCOPE_API_KEY_PEPPER || undefined,
  });
}
