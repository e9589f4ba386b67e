import { resolveQdrant } from '@tenantscope/testkit';
import type { ServiceSetup } from '../global.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** REST URL of the Qdrant the suites use (a real server, or the QdrantProtocolDouble). */
    qdrantUrl: string;
    /** API key for a real Qdrant from QDRANT_API_KEY, or '' for none. */
    qdrantApiKey: string;
    /** How it was resolved: env, testcontainers or double. */
    qdrantSource: string;
  }
}

export const service: ServiceSetup = {
  async start() {
    const q = await resolveQdrant();
    return {
      provide: { qdrantUrl: q.url, qdrantApiKey: q.apiKey ?? '', qdrantSource: q.source },
      describe: q.describe,
      stop: () => q.stop(),
    };
  },
};
