import { resolveS3, type S3Connection } from '@tenantscope/testkit';
import type { ServiceSetup } from '../global.ts';

declare module 'vitest' {
  interface ProvidedContext {
    /** The S3 server the suites use: S3_ENDPOINT, else testcontainers MinIO, else the s3rver fallback. */
    s3: S3Connection;
  }
}

export const service: ServiceSetup = {
  async start() {
    const s3 = await resolveS3();
    const { stop, describe, source: _source, ...connection } = s3;
    return { provide: { s3: connection }, describe, stop };
  },
};
