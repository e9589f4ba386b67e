import { resolveSecretsManager } from '@tenantscope/testkit';
import type { ServiceSetup } from '../global.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** Secrets Manager endpoint the suites use (env, LocalStack, or the testkit protocol double). */
    secretsManager: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; source: string };
  }
}

export const service: ServiceSetup = {
  async start() {
    const sm = await resolveSecretsManager();
    return {
      provide: {
        secretsManager: {
          endpoint: sm.endpoint,
          region: sm.region,
          accessKeyId: sm.accessKeyId,
          secretAccessKey: sm.secretAccessKey,
          source: sm.source,
        },
      },
      describe: sm.describe,
      stop: () => sm.stop(),
    };
  },
};
