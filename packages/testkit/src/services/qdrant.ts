import { QdrantProtocolDouble } from '../doubles/qdrant.ts';
import { containerRuntimeAvailable, type ResolvedService } from './runtime.ts';

export interface ResolvedQdrant extends ResolvedService {
  /** REST base URL, e.g. `http://127.0.0.1:6333`. */
  url: string;
  /** API key for a real server, if QDRANT_API_KEY was set. */
  apiKey: string | undefined;
}

/** Image for the testcontainers path: the server version matching client 1.19 (update_filter needs 1.16+). */
export const QDRANT_TEST_IMAGE = 'qdrant/qdrant:v1.19.0';

/**
 * Qdrant for tests: `QDRANT_URL` (and optional `QDRANT_API_KEY`) if set, else a testcontainers
 * Qdrant when a container runtime answers, else the in-process `QdrantProtocolDouble` (a strict
 * test double of the REST API; it says so in `describe`).
 */
export async function resolveQdrant(): Promise<ResolvedQdrant> {
  const env = process.env.QDRANT_URL;
  if (env) {
    return {
      source: 'env',
      url: env.replace(/\/$/, ''),
      apiKey: process.env.QDRANT_API_KEY || undefined,
      describe: `Qdrant from QDRANT_URL (${new URL(env).host})`,
      stop: async () => {},
    };
  }
  if (await containerRuntimeAvailable()) {
    const { QdrantContainer } = await import('@testcontainers/qdrant');
    const c = await new QdrantContainer(QDRANT_TEST_IMAGE).start();
    return {
      source: 'testcontainers',
      url: `http://${c.getRestHostAddress()}`,
      apiKey: undefined,
      describe: `Qdrant ${QDRANT_TEST_IMAGE} (testcontainers)`,
      stop: async () => {
        await c.stop();
      },
    };
  }
  const double = await QdrantProtocolDouble.start();
  return {
    source: 'double',
    url: double.url,
    apiKey: undefined,
    describe: `QdrantProtocolDouble (a strict test double of the Qdrant REST API, not Qdrant) on ${double.url}; set QDRANT_URL to run against a real server`,
    stop: () => double.close(),
  };
}
