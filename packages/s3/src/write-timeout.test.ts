/**
 * A write the store admitted must end within `writeTimeoutMs`: that bound is what a `tenant move`'s
 * settle wait covers. A local HTTP server on loopback that reads the request and never answers
 * stands in for a store that hangs (no real store hangs on purpose).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { createTestIssuer } from '@tenantscope/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopedS3 } from './client.ts';

let server: Server;
let seen = 0;
let endpoint: string;
/** Long enough for the request to reach the server on a loaded machine (it must: the write was admitted). */
const BOUND = 1500;
beforeAll(async () => {
  server = createServer((req) => {
    seen++;
    req.resume(); // read the body, never answer
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('writeTimeoutMs', () => {
  it('aborts a put, copy, delete and deleteMany the store does not answer, after the bound, with S3_REQUEST_FAILED', async () => {
    const acme = await (await createTestIssuer()).tenant('acme');
    const client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    });
    const files = scopedS3(client, { bucket: 'bkt', writeTimeoutMs: BOUND }).forTenant(acme);
    const writes: [string, () => Promise<unknown>][] = [
      ['put', () => files.put('a.txt', 'x')],
      ['copy', () => files.copy('a.txt', 'b.txt')],
      ['delete', () => files.delete('a.txt')],
      ['deleteMany', () => files.deleteMany(['a.txt', 'b.txt'])],
    ];
    for (const [name, write] of writes) {
      const before = seen;
      const t0 = performance.now();
      const err = await write().then(
        () => undefined,
        (e) => e,
      );
      const ms = performance.now() - t0;
      expect(err, name).toMatchObject({ code: 'S3_REQUEST_FAILED' });
      expect(seen, `${name} reached the server`).toBeGreaterThan(before);
      expect(ms, name).toBeGreaterThanOrEqual(BOUND - 10);
      expect(ms, name).toBeLessThan(BOUND + 5000);
    }
    client.destroy();
  });

  it('is a positive integer', () => {
    const client = new S3Client({ region: 'us-east-1' });
    for (const bad of [0, -1, 1.5]) {
      expect(() => scopedS3(client, { bucket: 'bkt', writeTimeoutMs: bad })).toThrow(/writeTimeoutMs/);
    }
  });
});
