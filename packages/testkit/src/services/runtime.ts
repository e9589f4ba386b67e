/**
 * Container runtime detection, done once per process and quickly. testcontainers is imported
 * lazily, inside the check, so a machine without Docker never pays for (or crashes on) it.
 */
let probe: Promise<boolean> | undefined;

export function containerRuntimeAvailable(timeoutMs = 3000): Promise<boolean> {
  if (process.env.TENANTSCOPE_NO_CONTAINERS === '1') return Promise.resolve(false);
  probe ??= (async () => {
    try {
      const tc = await import('testcontainers');
      const timeout = new Promise<never>((_, reject) => {
        setTimeout(() => reject(new Error('container runtime probe timed out')), timeoutMs).unref();
      });
      await Promise.race([tc.getContainerRuntimeClient(), timeout]);
      return true;
    } catch {
      return false;
    }
  })();
  return probe;
}

/** How a service was resolved, for the test log. */
export type ServiceSource = 'env' | 'testcontainers' | 'embedded' | 'in-process' | 'double';

export interface ResolvedService {
  /** Where it came from. */
  source: ServiceSource;
  /** A one-line description for the test log (never includes credentials). */
  describe: string;
  /** Stops what this resolution started (no-op for env). */
  stop(): Promise<void>;
}
