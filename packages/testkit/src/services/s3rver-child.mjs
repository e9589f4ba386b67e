// Runs s3rver (the in-process S3 fallback) in a child process, because its ListObjectsV2
// pagination needs `--openssl-legacy-provider`, which must not be forced on the test process.
// Prints {"port": N} on stdout once listening; exits when its stdin closes (the parent is gone).
import S3rver from 's3rver';

const [directory] = process.argv.slice(2);
const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, resetOnClose: true });
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
