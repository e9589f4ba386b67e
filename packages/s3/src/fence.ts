/**
 * A move's fence, enforced by the store: statements added to (and removed from) a bucket's live
 * policy by read-modify-write, keeping every other statement. S3 has no conditional
 * PutBucketPolicy, so each change is read back and redone (bounded) if a concurrent writer of the
 * same policy dropped it.
 */
import {
  DeleteBucketPolicyCommand,
  GetBucketPolicyCommand,
  PutBucketPolicyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { s3Error } from './errors.ts';
import {
  type FenceOptions,
  fenceSids,
  fenceStatements,
  type PolicyDocument,
  type PolicyPlacement,
  type PolicyStatement,
} from './policy.ts';

/** The live policy's statements; [] when the bucket has none. Unparseable: S3_REQUEST_FAILED. */
async function readStatements(client: S3Client, bucket: string): Promise<PolicyStatement[]> {
  let text: string | undefined;
  try {
    text = (await client.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy;
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchBucketPolicy') return [];
    throw s3Error('S3_REQUEST_FAILED', 'GetBucketPolicy failed', { cause: err });
  }
  if (!text) return [];
  let st: unknown;
  try {
    st = (JSON.parse(text) as { Statement?: unknown }).Statement;
  } catch (err) {
    throw s3Error('S3_REQUEST_FAILED', 'the bucket policy is not JSON; left unchanged', { cause: err });
  }
  if (st === undefined) return [];
  if (!st || typeof st !== 'object') throw s3Error('S3_REQUEST_FAILED', 'the bucket policy has no statement list');
  return (Array.isArray(st) ? st : [st]) as PolicyStatement[];
}

async function writeStatements(client: S3Client, bucket: string, statements: PolicyStatement[]): Promise<void> {
  try {
    if (statements.length === 0) await client.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    else {
      const doc: PolicyDocument = { Version: '2012-10-17', Statement: statements };
      await client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(doc) }));
    }
  } catch (err) {
    throw s3Error('S3_REQUEST_FAILED', 'PutBucketPolicy failed', { cause: err });
  }
}

const same = (a: PolicyStatement, b: PolicyStatement) => JSON.stringify(a) === JSON.stringify(b);

/** Read-modify-write until the live policy reads back as `done` says (at most `tries` rounds). */
async function change(
  client: S3Client,
  bucket: string,
  edit: (live: PolicyStatement[]) => PolicyStatement[] | undefined,
  what: string,
  tries = 5,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const next = edit(await readStatements(client, bucket));
    if (next === undefined) return; // already as wanted
    await writeStatements(client, bucket, next);
  }
  if (edit(await readStatements(client, bucket)) !== undefined) {
    throw s3Error('S3_REQUEST_FAILED', `${what}: the bucket policy kept changing under it (${tries} tries)`);
  }
}

/**
 * Adds `statements` to the bucket's policy (replacing statements with the same Sids), keeping the
 * rest; idempotent. Returns when the live policy holds them.
 */
export async function addPolicyStatements(
  client: S3Client,
  bucket: string,
  statements: readonly PolicyStatement[],
): Promise<void> {
  const sids = new Set(statements.map((s) => s.Sid));
  await change(
    client,
    bucket,
    (live) => {
      const present = statements.every((s) => live.some((l) => l.Sid === s.Sid && same(l, s)));
      if (present) return undefined;
      return [...live.filter((l) => !sids.has(l.Sid)), ...statements];
    },
    'add the fence',
  );
}

/** Removes the statements with these Sids from the bucket's policy, keeping the rest; idempotent. */
export async function removePolicyStatements(client: S3Client, bucket: string, sids: readonly string[]): Promise<void> {
  const drop = new Set(sids);
  await change(
    client,
    bucket,
    (live) => (live.some((l) => drop.has(l.Sid ?? '')) ? live.filter((l) => !drop.has(l.Sid ?? '')) : undefined),
    'lift the fence',
  );
}

/**
 * Fences one tenant's place: the bucket's policy then denies every write on the tenant's prefix
 * (or the whole bucket, `wholeBucket`) to every principal but `exemptUser`, its role sessions
 * included. Writes the store admitted before the policy changed still finish; on AWS a policy
 * change takes a few seconds to apply everywhere. Idempotent.
 */
export async function fenceTenant(
  client: S3Client,
  tenantId: string,
  placement: PolicyPlacement,
  options: FenceOptions,
): Promise<void> {
  await addPolicyStatements(client, placement.bucket, fenceStatements(tenantId, placement, options));
}

/** Lifts one tenant's fence from a bucket (other statements stay). Idempotent. */
export async function unfenceTenant(client: S3Client, tenantId: string, bucket: string): Promise<void> {
  await removePolicyStatements(client, bucket, fenceSids(tenantId));
}
