import {
  BatchGetSecretValueCommand,
  type BatchGetSecretValueCommandOutput,
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager';
import { isTenantScopeError, TenantScopeError } from '@tenantscope/core';
import { type SecretsErrorCode, secretsError } from './errors.ts';
import type { SecretsProvider, SecretValue } from './provider.ts';

export interface AwsSecretsManagerOptions {
  /** A `SecretsManagerClient` you built (region, credentials, endpoint). Kept as `unscopedClient`. */
  client?: SecretsManagerClient;
  /**
   * Instead of `client`: the config to build one with (for apps that do not depend on the SDK
   * directly). Exactly one of `client` and `clientConfig` is required.
   */
  clientConfig?: SecretsManagerClientConfig;
  /**
   * How `delete` (and a DSAR erase) deletes: `true` (default) deletes at once with
   * `ForceDeleteWithoutRecovery`; a number is a recovery window in days (7–30).
   */
  deleteWithoutRecovery?: true | number;
  /** Secrets per BatchGetSecretValue request (AWS allows at most 20). Default 20. */
  batchSize?: number;
}

/** AWS error names mapped to this package's codes. Anything else is SECRET_BACKEND_FAILED. */
const ERROR_MAP: Record<string, SecretsErrorCode> = {
  ResourceNotFoundException: 'SECRET_NOT_FOUND',
  AccessDeniedException: 'SECRET_ACCESS_DENIED',
  AccessDenied: 'SECRET_ACCESS_DENIED',
  UnrecognizedClientException: 'SECRET_ACCESS_DENIED',
  InvalidSignatureException: 'SECRET_ACCESS_DENIED',
  // e.g. "You can't perform this operation on the secret because it was marked for deletion."
  InvalidRequestException: 'SECRET_UNAVAILABLE',
};

/** Maps an AWS SDK error (or a BatchGetSecretValue `ErrorCode`) to a typed error naming `name` only. */
export function mapAwsError(errorName: string | undefined, name: string, cause?: unknown): TenantScopeError {
  const code = (errorName && ERROR_MAP[errorName]) || 'SECRET_BACKEND_FAILED';
  const what =
    code === 'SECRET_NOT_FOUND'
      ? 'was not found'
      : code === 'SECRET_ACCESS_DENIED'
        ? 'access was denied'
        : code === 'SECRET_UNAVAILABLE'
          ? 'is not readable now'
          : 'could not be read';
  return secretsError(code, `secret "${name}" ${what} (Secrets Manager: ${errorName ?? 'error'})`, {
    cause,
    details: { awsError: errorName ?? null },
  });
}

function errName(err: unknown): string | undefined {
  const e = err as { name?: unknown; Code?: unknown; __type?: unknown } | undefined;
  return typeof e?.name === 'string' ? e.name : undefined;
}

/** The last path segment, for messages (the tenant-relative name under the default naming). */
function shortName(id: string): string {
  return id.slice(id.lastIndexOf('/') + 1);
}

function toValue(out: { SecretString?: string; SecretBinary?: Uint8Array; VersionId?: string }): SecretValue {
  if (typeof out.SecretString === 'string') return { value: out.SecretString, versionId: out.VersionId };
  if (out.SecretBinary instanceof Uint8Array) {
    return { value: Buffer.from(out.SecretBinary).toString('base64'), versionId: out.VersionId };
  }
  throw secretsError('SECRET_BACKEND_FAILED', 'Secrets Manager returned neither SecretString nor SecretBinary');
}

/**
 * AWS Secrets Manager as a secrets provider: GetSecretValue (AWSCURRENT unless a version is
 * pinned), BatchGetSecretValue (any entry in `Errors[]` fails the read), ListSecrets for DSAR
 * listing, CreateSecret/PutSecretValue for seeding and rotation, DeleteSecret for erasure.
 */
export class AwsSecretsManagerProvider implements SecretsProvider {
  readonly kind = 'aws-secrets-manager';
  /** The client this provider wraps. Calls made on it directly are not tenant-scoped. */
  readonly unscopedClient: SecretsManagerClient;
  readonly #delete: true | number;
  readonly #batchSize: number;

  constructor(options: AwsSecretsManagerOptions) {
    if (!options || (options.client === undefined) === (options.clientConfig === undefined)) {
      throw new TenantScopeError('INVALID_CONFIG', 'awsSecretsManager needs a client or a clientConfig (not both)');
    }
    const del = options.deleteWithoutRecovery ?? true;
    if (del !== true && (!Number.isInteger(del) || del < 7 || del > 30)) {
      throw new TenantScopeError('INVALID_CONFIG', 'deleteWithoutRecovery must be true or 7-30 days');
    }
    const batch = options.batchSize ?? 20;
    if (!Number.isInteger(batch) || batch < 1 || batch > 20) {
      throw new TenantScopeError('INVALID_CONFIG', 'batchSize must be 1-20');
    }
    this.unscopedClient =
      options.client ?? new SecretsManagerClient(options.clientConfig as SecretsManagerClientConfig);
    this.#delete = del;
    this.#batchSize = batch;
  }

  async get(req: Parameters<SecretsProvider['get']>[0]): Promise<SecretValue> {
    const v = req.version ?? {};
    try {
      const out = await this.unscopedClient.send(
        new GetSecretValueCommand({
          SecretId: req.id,
          VersionId: v.versionId,
          // AWSCURRENT unless a version id or another stage was asked for.
          VersionStage: v.versionId ? undefined : (v.versionStage ?? 'AWSCURRENT'),
        }),
      );
      if (out.Name !== undefined && out.Name !== req.id && out.ARN !== req.id) {
        throw secretsError('SECRET_BACKEND_FAILED', 'Secrets Manager answered for another secret');
      }
      return toValue(out);
    } catch (err) {
      if (isTenantScopeError(err)) throw err;
      throw mapAwsError(errName(err), shortName(req.id), err);
    }
  }

  async getMany(req: Parameters<SecretsProvider['getMany']>[0]): Promise<Map<string, SecretValue>> {
    const out = new Map<string, SecretValue>();
    const ids = [...new Set(req.ids)];
    for (let i = 0; i < ids.length; i += this.#batchSize) {
      const chunk = ids.slice(i, i + this.#batchSize);
      let res: BatchGetSecretValueCommandOutput;
      try {
        res = await this.unscopedClient.send(new BatchGetSecretValueCommand({ SecretIdList: chunk }));
      } catch (err) {
        throw mapAwsError(
          errName(err),
          chunk.length === 1 ? shortName(chunk[0] as string) : `${chunk.length} secrets`,
          err,
        );
      }
      // Any per-secret error fails the whole read: a partial answer is never handed out.
      const first = res.Errors?.[0];
      if (first) {
        const id = typeof first.SecretId === 'string' && chunk.includes(first.SecretId) ? first.SecretId : '';
        throw mapAwsError(first.ErrorCode, id ? shortName(id) : 'a secret in the batch', first);
      }
      for (const entry of res.SecretValues ?? []) {
        const key = chunk.find((id) => id === entry.Name || id === entry.ARN);
        if (key === undefined) continue; // never hand out something that was not asked for
        out.set(key, toValue(entry));
      }
      const missing = chunk.find((id) => !out.has(id));
      if (missing !== undefined) {
        throw secretsError('SECRET_BACKEND_FAILED', `secret "${shortName(missing)}" was missing from the batch answer`);
      }
    }
    return out;
  }

  async list(req: Parameters<SecretsProvider['list']>[0]): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    try {
      do {
        const res = await this.unscopedClient.send(
          new ListSecretsCommand({
            Filters: [{ Key: 'name', Values: [req.prefix] }],
            MaxResults: 100,
            NextToken: token,
          }),
        );
        for (const s of res.SecretList ?? []) {
          // The name filter is a case-insensitive prefix match: check exactly here.
          if (typeof s.Name === 'string' && s.Name.startsWith(req.prefix)) names.push(s.Name);
        }
        token = res.NextToken;
      } while (token);
    } catch (err) {
      if (isTenantScopeError(err)) throw err;
      throw mapAwsError(errName(err), 'listing', err);
    }
    return [...new Set(names)].sort();
  }

  async put(req: Parameters<SecretsProvider['put']>[0]): Promise<{ versionId?: string }> {
    try {
      const res = await this.unscopedClient.send(
        new PutSecretValueCommand({ SecretId: req.id, SecretString: req.value }),
      );
      return { versionId: res.VersionId };
    } catch (err) {
      if (errName(err) !== 'ResourceNotFoundException') throw mapAwsError(errName(err), shortName(req.id), err);
    }
    try {
      const res = await this.unscopedClient.send(new CreateSecretCommand({ Name: req.id, SecretString: req.value }));
      return { versionId: res.VersionId };
    } catch (err) {
      throw mapAwsError(errName(err), shortName(req.id), err);
    }
  }

  async delete(req: Parameters<SecretsProvider['delete']>[0]): Promise<boolean> {
    try {
      await this.unscopedClient.send(
        new DeleteSecretCommand(
          this.#delete === true
            ? { SecretId: req.id, ForceDeleteWithoutRecovery: true }
            : { SecretId: req.id, RecoveryWindowInDays: this.#delete },
        ),
      );
      return true;
    } catch (err) {
      if (errName(err) === 'ResourceNotFoundException') return false;
      throw mapAwsError(errName(err), shortName(req.id), err);
    }
  }
}

/** AWS Secrets Manager provider for `secretsInjector({ provider })`. */
export function awsSecretsManager(options: AwsSecretsManagerOptions): AwsSecretsManagerProvider {
  return new AwsSecretsManagerProvider(options);
}
