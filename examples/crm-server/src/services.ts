import { type ResolvedPostgres, resolvePostgres } from '@tenantscope/testkit';

let pg: Promise<ResolvedPostgres> | undefined;
let users = 0;

/**
 * The example's PostgreSQL, shared by every plugin that needs one: `DATABASE_URL` when set
 * (a superuser URL; plugins create their own least-privileged roles), else testcontainers, else
 * an embedded PostgreSQL started once. Each caller gets a `release` that stops it after the last.
 */
export async function sharedPostgres(): Promise<{ url: string; describe: string; release(): Promise<void> }> {
  pg ??= resolvePostgres();
  const resolved = await pg;
  users++;
  let released = false;
  return {
    url: resolved.url,
    describe: resolved.describe,
    async release() {
      if (released) return;
      released = true;
      users--;
      if (users === 0) {
        pg = undefined;
        await resolved.stop();
      }
    },
  };
}
