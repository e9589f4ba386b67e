import { resolvePostgres } from '@tenantscope/testkit';
import type { ServiceSetup } from '../global.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** Superuser URL of the PostgreSQL the suites use. */
    databaseUrl: string;
    /** How it was resolved: env, testcontainers or embedded. */
    databaseSource: string;
  }
}

export const service: ServiceSetup = {
  async start() {
    const pg = await resolvePostgres();
    return {
      provide: { databaseUrl: pg.url, databaseSource: pg.source },
      describe: pg.describe,
      stop: () => pg.stop(),
    };
  },
};
