// Runs s3rver (the in-process S3 fallback) in a child process, because its ListObjectsV2
// pagination needs `--openssl-legacy-provider`, which must not be forced on the test process.
// Prints {"port": N} on stdout once listening; exits when its stdin closes (the parent is gone).
import { createRequire } from 'node:module';
import S3rver from 's3rver';

const require = createRequire(import.meta.url);
const S3Error = require('s3rver/lib/models/error');

const [directory] = process.argv.slice(2);
const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, resetOnClose: true });
// s3rver keeps each object in a file named after its key; a key segment longer than the
// filesystem's 255-byte name limit crashed the whole process (ENAMETOOLONG). Refuse such keys with
// an S3 error instead. Real servers (Ceph RGW, MinIO, AWS) take any key up to 1,024 bytes.
const store = server.store;
const getResourcePath = store.getResourcePath.bind(store);
store.getResourcePath = (bucket, key = '', resource) => {
  for (const seg of String(key).split('/')) {
    if (Buffer.byteLength(seg) > 200) {
      throw new S3Error('KeyTooLongError', 's3rver fallback: a key segment is too long for its filesystem store');
    }
  }
  return getResourcePath(bucket, key, resource);
};
const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
const stop = async () => {
  await server.close().catch(() => undefined);
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
