/**
 * A PROTOCOL DOUBLE of AWS Secrets Manager: a real HTTP server on loopback that speaks the wire
 * format `@aws-sdk/client-secrets-manager` uses (AWS JSON 1.1), strictly. It is not AWS and not
 * LocalStack; it exists because no Secrets Manager server runs here without a container runtime.
 * The same suites run against a real endpoint (SECRETS_MANAGER_ENDPOINT) or LocalStack.
 *
 * Strict on what a client sends:
 *  - `POST /` only; `content-type: application/x-amz-json-1.1`; `x-amz-target: secretsmanager.<Op>`
 *    for a supported operation;
 *  - a SigV4 `Authorization` header for service `secretsmanager` in the configured region, with
 *    `x-amz-date` matching its scope; the signature is recomputed and checked when the secret
 *    key of the access key is known (independently of the SDK's signer, so a signer bug shows);
 *  - JSON bodies checked against each operation's shape: unknown members and wrong types are
 *    refused, required members enforced, length limits applied.
 * AWS-shaped answers: epoch-second dates, errors as HTTP 400 `{"__type": …, "message": …}`,
 * BatchGetSecretValue per-secret failures in `Errors[]`, AWSCURRENT/AWSPREVIOUS staging.
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** Supported operations. */
export const SECRETS_MANAGER_OPERATIONS = [
  'CreateSecret',
  'PutSecretValue',
  'GetSecretValue',
  'BatchGetSecretValue',
  'ListSecrets',
  'DeleteSecret',
  'DescribeSecret',
] as const;
export type SecretsManagerOperation = (typeof SECRETS_MANAGER_OPERATIONS)[number];

export interface SecretsManagerDoubleOptions {
  /** Region the double answers for; a request signed for another region is refused. Default `us-east-1`. */
  region?: string;
  /** Account id in ARNs. Default `000000000000`. */
  accountId?: string;
  /**
   * Known credentials. A request signed with another access key is refused
   * (UnrecognizedClientException); its signature is verified with the secret key.
   * Default: one pair, `test` / `test`.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string }[];
  /**
   * Access policy: return false to answer AccessDeniedException (per entry in `Errors[]` for
   * BatchGetSecretValue). Default: allow everything.
   */
  authorize?: (req: { accessKeyId: string; operation: SecretsManagerOperation; secretName: string | null }) => boolean;
  /** Port on 127.0.0.1. Default: a free one. */
  port?: number;
}

/** One request the double accepted, for tests that count backend traffic. */
export interface SecretsManagerDoubleCall {
  operation: SecretsManagerOperation;
  accessKeyId: string;
  /** Secret ids the request named (SecretId, Name, SecretIdList). */
  secretIds: string[];
}

interface Version {
  id: string;
  string?: string;
  binary?: string; // base64
  stages: Set<string>;
  created: number;
}
interface Secret {
  name: string;
  arn: string;
  description?: string;
  created: number;
  changed: number;
  deletedAt?: number;
  versions: Map<string, Version>;
}

class AwsError extends Error {
  readonly type: string;
  readonly status: number;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const TOKEN = /^[A-Za-z0-9-]{32,64}$/;
const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;.-]+), ?Signature=([0-9a-f]{64})$/;

type Shape = Record<string, { type: 'string' | 'number' | 'boolean' | 'array' | 'object'; required?: boolean }>;
const SHAPES: Record<SecretsManagerOperation, Shape> = {
  CreateSecret: {
    Name: { type: 'string', required: true },
    ClientRequestToken: { type: 'string' },
    Description: { type: 'string' },
    KmsKeyId: { type: 'string' },
    SecretBinary: { type: 'string' },
    SecretString: { type: 'string' },
    Tags: { type: 'array' },
    AddReplicaRegions: { type: 'array' },
    ForceOverwriteReplicaSecret: { type: 'boolean' },
    Type: { type: 'string' },
  },
  PutSecretValue: {
    SecretId: { type: 'string', required: true },
    ClientRequestToken: { type: 'string' },
    SecretBinary: { type: 'string' },
    SecretString: { type: 'string' },
    VersionStages: { type: 'array' },
    RotationToken: { type: 'string' },
  },
  GetSecretValue: {
    SecretId: { type: 'string', required: true },
    VersionId: { type: 'string' },
    VersionStage: { type: 'string' },
  },
  BatchGetSecretValue: {
    SecretIdList: { type: 'array' },
    Filters: { type: 'array' },
    MaxResults: { type: 'number' },
    NextToken: { type: 'string' },
  },
  ListSecrets: {
    IncludePlannedDeletion: { type: 'boolean' },
    MaxResults: { type: 'number' },
    NextToken: { type: 'string' },
    Filters: { type: 'array' },
    SortOrder: { type: 'string' },
    SortBy: { type: 'string' },
  },
  DeleteSecret: {
    SecretId: { type: 'string', required: true },
    RecoveryWindowInDays: { type: 'number' },
    ForceDeleteWithoutRecovery: { type: 'boolean' },
  },
  DescribeSecret: { SecretId: { type: 'string', required: true } },
};

/** A strict Secrets Manager protocol double on loopback. Named as a double on purpose. */
export class SecretsManagerProtocolDouble {
  readonly region: string;
  readonly accountId: string;
  readonly #credentials: Map<string, string>;
  readonly #authorize: NonNullable<SecretsManagerDoubleOptions['authorize']>;
  readonly #port: number;
  readonly #secrets = new Map<string, Secret>();
  readonly #calls: SecretsManagerDoubleCall[] = [];
  /** Requests refused before reaching an operation (bad header, signature, shape), by error type. */
  readonly rejected: { type: string; message: string }[] = [];
  #server: Server | undefined;
  #endpoint: string | undefined;

  constructor(options: SecretsManagerDoubleOptions = {}) {
    this.region = options.region ?? 'us-east-1';
    this.accountId = options.accountId ?? '000000000000';
    const creds = options.credentials ?? [{ accessKeyId: 'test', secretAccessKey: 'test' }];
    this.#credentials = new Map(creds.map((c) => [c.accessKeyId, c.secretAccessKey]));
    this.#authorize = options.authorize ?? (() => true);
    this.#port = options.port ?? 0;
  }

  /** `http://127.0.0.1:<port>` once started. */
  get endpoint(): string {
    if (!this.#endpoint) throw new Error('SecretsManagerProtocolDouble is not started');
    return this.#endpoint;
  }

  /** Accepted requests so far (a copy). */
  get calls(): SecretsManagerDoubleCall[] {
    return this.#calls.map((c) => ({ ...c, secretIds: [...c.secretIds] }));
  }

  /** Forgets the request log. */
  resetCalls(): void {
    this.#calls.length = 0;
    this.rejected.length = 0;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (typeof addr !== 'object' || !addr) throw new Error('double could not bind');
    this.#server = server;
    this.#endpoint = `http://127.0.0.1:${addr.port}`;
    return this.#endpoint;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  // --- HTTP -----------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > 1024 * 1024) throw new AwsError('SerializationException', 'request body too large', 413);
        chunks.push(c as Buffer);
      }
      const raw = Buffer.concat(chunks);
      const { operation, accessKeyId } = this.#checkEnvelope(req, raw);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new AwsError('SerializationException', 'body is not valid JSON');
      }
      checkShape(operation, body);
      const input = body as Record<string, unknown>;
      this.#calls.push({ operation, accessKeyId, secretIds: secretIdsOf(input) });
      const out = this.#dispatch(operation, input, accessKeyId);
      send(res, 200, out);
    } catch (err) {
      const e = err instanceof AwsError ? err : new AwsError('InternalServiceError', 'internal error', 500);
      if (!(err instanceof AwsError)) console.error('[SecretsManagerProtocolDouble]', err);
      send(res, e.status, { __type: e.type, message: e.message });
    }
  }

  #reject(type: string, message: string, status = 400): never {
    this.rejected.push({ type, message });
    throw new AwsError(type, message, status);
  }

  #checkEnvelope(req: IncomingMessage, raw: Buffer): { operation: SecretsManagerOperation; accessKeyId: string } {
    if (req.method !== 'POST' || (req.url ?? '') !== '/') {
      this.#reject('UnknownOperationException', `${req.method} ${req.url} is not an operation`, 404);
    }
    const ct = String(req.headers['content-type'] ?? '');
    if (ct !== 'application/x-amz-json-1.1') {
      this.#reject('SerializationException', `content-type must be application/x-amz-json-1.1, got "${ct}"`);
    }
    const target = String(req.headers['x-amz-target'] ?? '');
    const m = /^secretsmanager\.([A-Za-z]+)$/.exec(target);
    const operation = m?.[1] as SecretsManagerOperation | undefined;
    if (!operation || !SECRETS_MANAGER_OPERATIONS.includes(operation)) {
      this.#reject('UnknownOperationException', `unknown x-amz-target "${target}"`);
    }
    const auth = String(req.headers.authorization ?? '');
    if (!auth) this.#reject('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
    const a = AUTH.exec(auth);
    if (!a) this.#reject('IncompleteSignatureException', 'Authorization is not a SigV4 header', 403);
    const [, accessKeyId, date, region, service, signedHeaders, signature] = a as unknown as string[];
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    if (!/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== date) {
      this.#reject('IncompleteSignatureException', 'x-amz-date is missing or does not match the credential scope', 403);
    }
    if (service !== 'secretsmanager') {
      this.#reject('InvalidSignatureException', `credential scope names service "${service}"`, 403);
    }
    if (region !== this.region) {
      this.#reject('InvalidSignatureException', `credential scope names region "${region}"`, 403);
    }
    const signed = (signedHeaders as string).split(';');
    for (const h of ['host', 'x-amz-date', 'x-amz-target', 'content-type']) {
      if (!signed.includes(h)) this.#reject('IncompleteSignatureException', `header ${h} is not signed`, 403);
    }
    const skew = Math.abs(
      Date.now() -
        Date.parse(
          `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
        ),
    );
    if (!(skew < 15 * 60_000)) this.#reject('InvalidSignatureException', 'Signature expired', 403);
    const secret = this.#credentials.get(accessKeyId as string);
    if (secret === undefined) {
      this.#reject('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    const expected = sigv4(req, raw, signed, amzDate, `${date}/${region}/${service}/aws4_request`, secret);
    if (
      expected.length !== (signature as string).length ||
      !timingSafeEqual(Buffer.from(expected), Buffer.from(signature as string))
    ) {
      this.#reject(
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided.',
        403,
      );
    }
    return { operation: operation as SecretsManagerOperation, accessKeyId: accessKeyId as string };
  }

  // --- operations -----------------------------------------------------------------------------

  #dispatch(op: SecretsManagerOperation, input: Record<string, unknown>, key: string): unknown {
    switch (op) {
      case 'CreateSecret':
        return this.#create(input, key);
      case 'PutSecretValue':
        return this.#put(input, key);
      case 'GetSecretValue':
        return this.#get(input, key);
      case 'BatchGetSecretValue':
        return this.#batchGet(input, key);
      case 'ListSecrets':
        return this.#list(input, key);
      case 'DeleteSecret':
        return this.#delete(input, key);
      case 'DescribeSecret':
        return this.#describe(input, key);
    }
  }

  #allow(key: string, operation: SecretsManagerOperation, secretName: string | null): boolean {
    return this.#authorize({ accessKeyId: key, operation, secretName });
  }

  #deny(key: string, operation: SecretsManagerOperation, secretName: string | null): void {
    if (!this.#allow(key, operation, secretName)) {
      throw new AwsError(
        'AccessDeniedException',
        `User: arn:aws:iam::${this.accountId}:user/${key} is not authorized to perform: secretsmanager:${operation}`,
      );
    }
  }

  #find(id: string): Secret {
    const s = this.#secrets.get(id) ?? [...this.#secrets.values()].find((x) => x.arn === id);
    if (!s) throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    return s;
  }

  #live(id: string): Secret {
    const s = this.#find(id);
    if (s.deletedAt !== undefined) {
      throw new AwsError(
        'InvalidRequestException',
        "You can't perform this operation on the secret because it was marked for deletion.",
      );
    }
    return s;
  }

  #newVersion(s: Secret, input: Record<string, unknown>, stages: string[]): Version {
    const token = input.ClientRequestToken as string | undefined;
    if (token !== undefined && !TOKEN.test(token)) {
      throw new AwsError('InvalidParameterException', 'ClientRequestToken must be 32-64 characters');
    }
    const value = secretValueOf(input);
    const existing = token ? s.versions.get(token) : undefined;
    if (existing) {
      if (existing.string !== value.string || existing.binary !== value.binary) {
        throw new AwsError('ResourceExistsException', 'A version with this ClientRequestToken already exists.');
      }
      return existing;
    }
    const v: Version = { id: token ?? randomUUID(), ...value, stages: new Set(), created: now() };
    s.versions.set(v.id, v);
    for (const stage of stages) this.#moveStage(s, stage, v);
    s.changed = now();
    return v;
  }

  #moveStage(s: Secret, stage: string, to: Version): void {
    for (const v of s.versions.values()) {
      if (v !== to && v.stages.has(stage)) {
        v.stages.delete(stage);
        if (stage === 'AWSCURRENT') {
          for (const p of s.versions.values()) p.stages.delete('AWSPREVIOUS');
          v.stages.add('AWSPREVIOUS');
        }
      }
    }
    to.stages.add(stage);
    // A version with no stage is deprecated; AWS keeps it a while. Keep at most 100.
    if (s.versions.size > 100) {
      for (const [id, v] of s.versions) if (v.stages.size === 0 && s.versions.size > 100) s.versions.delete(id);
    }
  }

  #create(input: Record<string, unknown>, key: string): unknown {
    const name = input.Name as string;
    if (!NAME.test(name)) throw new AwsError('InvalidParameterException', 'Invalid name. Must be a valid name.');
    this.#deny(key, 'CreateSecret', name);
    if (input.SecretString !== undefined && input.SecretBinary !== undefined) {
      throw new AwsError(
        'InvalidParameterException',
        'You must provide either SecretString or SecretBinary, not both.',
      );
    }
    if (this.#secrets.has(name)) {
      const s = this.#secrets.get(name) as Secret;
      throw new AwsError(
        'ResourceExistsException',
        s.deletedAt !== undefined
          ? "You can't create this secret because a secret with this name is already scheduled for deletion."
          : `The operation failed because the secret ${name} already exists.`,
      );
    }
    const t = now();
    const s: Secret = {
      name,
      arn: `arn:aws:secretsmanager:${this.region}:${this.accountId}:secret:${name}-${randomBytes(3).toString('hex')}`,
      description: input.Description as string | undefined,
      created: t,
      changed: t,
      versions: new Map(),
    };
    let version: Version | undefined;
    if (input.SecretString !== undefined || input.SecretBinary !== undefined) {
      version = this.#newVersion(s, input, ['AWSCURRENT']);
    }
    this.#secrets.set(name, s);
    return { ARN: s.arn, Name: s.name, ...(version ? { VersionId: version.id } : {}) };
  }

  #put(input: Record<string, unknown>, key: string): unknown {
    const s = this.#find(input.SecretId as string);
    this.#deny(key, 'PutSecretValue', s.name);
    this.#live(s.name);
    if ((input.SecretString === undefined) === (input.SecretBinary === undefined)) {
      throw new AwsError('InvalidParameterException', 'You must provide either SecretString or SecretBinary.');
    }
    const stages = (input.VersionStages as unknown[] | undefined) ?? ['AWSCURRENT'];
    if (!stages.every((x) => typeof x === 'string' && /^[A-Za-z0-9_.-]{1,256}$/.test(x)) || stages.length > 20) {
      throw new AwsError('InvalidParameterException', 'Invalid VersionStages');
    }
    const v = this.#newVersion(s, input, stages as string[]);
    return { ARN: s.arn, Name: s.name, VersionId: v.id, VersionStages: [...v.stages] };
  }

  #resolveVersion(s: Secret, versionId?: string, stage?: string): Version {
    let v: Version | undefined;
    if (versionId !== undefined) {
      v = s.versions.get(versionId);
      if (v && stage !== undefined && !v.stages.has(stage)) v = undefined;
    } else {
      const want = stage ?? 'AWSCURRENT';
      v = [...s.versions.values()].find((x) => x.stages.has(want));
    }
    if (!v) {
      throw new AwsError(
        'ResourceNotFoundException',
        versionId !== undefined
          ? `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`
          : `Secrets Manager can't find the specified secret value for staging label: ${stage ?? 'AWSCURRENT'}`,
      );
    }
    return v;
  }

  #valueEntry(s: Secret, v: Version): Record<string, unknown> {
    return {
      ARN: s.arn,
      Name: s.name,
      VersionId: v.id,
      ...(v.string !== undefined ? { SecretString: v.string } : {}),
      ...(v.binary !== undefined ? { SecretBinary: v.binary } : {}),
      VersionStages: [...v.stages],
      CreatedDate: v.created,
    };
  }

  #get(input: Record<string, unknown>, key: string): unknown {
    const id = input.SecretId as string;
    if (id.length < 1 || id.length > 2048) throw new AwsError('InvalidParameterException', 'Invalid SecretId');
    // AWS checks permission before existence: a denied caller cannot probe for names.
    this.#deny(key, 'GetSecretValue', this.#secrets.get(id)?.name ?? id);
    const s = this.#live(id);
    const v = this.#resolveVersion(s, input.VersionId as string | undefined, input.VersionStage as string | undefined);
    return this.#valueEntry(s, v);
  }

  #batchGet(input: Record<string, unknown>, key: string): unknown {
    const ids = input.SecretIdList as unknown[] | undefined;
    const filters = input.Filters as unknown[] | undefined;
    if ((ids === undefined) === (filters === undefined)) {
      throw new AwsError('InvalidParameterException', 'You must specify either SecretIdList or Filters, not both.');
    }
    if (ids !== undefined) {
      if (input.MaxResults !== undefined || input.NextToken !== undefined) {
        throw new AwsError('InvalidParameterException', 'MaxResults and NextToken are only valid with Filters.');
      }
      if (
        ids.length < 1 ||
        ids.length > 20 ||
        !ids.every((x) => typeof x === 'string' && x.length >= 1 && x.length <= 2048)
      ) {
        throw new AwsError('InvalidParameterException', 'SecretIdList must hold 1-20 secret ids.');
      }
      const SecretValues: unknown[] = [];
      const Errors: unknown[] = [];
      for (const id of ids as string[]) {
        try {
          this.#deny(key, 'GetSecretValue', this.#secrets.get(id)?.name ?? id);
          const s = this.#live(id);
          SecretValues.push(this.#valueEntry(s, this.#resolveVersion(s)));
        } catch (err) {
          if (!(err instanceof AwsError)) throw err;
          Errors.push({ SecretId: id, ErrorCode: err.type, Message: err.message });
        }
      }
      return { SecretValues, Errors };
    }
    const matches = this.#filter(filters as unknown[], false).filter((s) => this.#allow(key, 'GetSecretValue', s.name));
    const { page, next } = paginate(matches, input.MaxResults, input.NextToken, 20);
    return {
      SecretValues: page.map((s) => this.#valueEntry(s, this.#resolveVersion(s))),
      Errors: [],
      ...(next ? { NextToken: next } : {}),
    };
  }

  #filter(filters: unknown[], includeDeleted: boolean): Secret[] {
    const parsed = filters.map((f) => {
      if (
        typeof f !== 'object' ||
        f === null ||
        !Object.keys(f).every((k) => k === 'Key' || k === 'Values') ||
        !['name', 'description', 'all', 'tag-key', 'tag-value', 'primary-region', 'owning-service'].includes(
          (f as { Key?: unknown }).Key as string,
        ) ||
        !Array.isArray((f as { Values?: unknown }).Values) ||
        !(f as { Values: unknown[] }).Values.every((v) => typeof v === 'string')
      ) {
        throw new AwsError('InvalidParameterException', 'Invalid filter');
      }
      return f as { Key: string; Values: string[] };
    });
    return [...this.#secrets.values()]
      .filter((s) => includeDeleted || s.deletedAt === undefined)
      .filter((s) =>
        parsed.every((f) =>
          f.Values.some((v) => {
            // AWS: prefix match, case-insensitive; a leading "!" negates.
            const neg = v.startsWith('!');
            const needle = (neg ? v.slice(1) : v).toLowerCase();
            const fields =
              f.Key === 'name'
                ? [s.name]
                : f.Key === 'description'
                  ? [s.description ?? '']
                  : f.Key === 'all'
                    ? [s.name, s.description ?? '']
                    : [];
            const hit = fields.some((x) => x.toLowerCase().startsWith(needle));
            return neg ? !hit : hit;
          }),
        ),
      )
      .sort((a, b) => a.created - b.created || a.name.localeCompare(b.name));
  }

  #list(input: Record<string, unknown>, key: string): unknown {
    this.#deny(key, 'ListSecrets', null);
    const matches = this.#filter((input.Filters as unknown[] | undefined) ?? [], input.IncludePlannedDeletion === true);
    const { page, next } = paginate(matches, input.MaxResults, input.NextToken, 100);
    return {
      SecretList: page.map((s) => ({
        ARN: s.arn,
        Name: s.name,
        ...(s.description ? { Description: s.description } : {}),
        CreatedDate: s.created,
        LastChangedDate: s.changed,
        ...(s.deletedAt !== undefined ? { DeletedDate: s.deletedAt } : {}),
        SecretVersionsToStages: Object.fromEntries(
          [...s.versions.values()].filter((v) => v.stages.size > 0).map((v) => [v.id, [...v.stages]]),
        ),
      })),
      ...(next ? { NextToken: next } : {}),
    };
  }

  #delete(input: Record<string, unknown>, key: string): unknown {
    const force = input.ForceDeleteWithoutRecovery === true;
    const window = input.RecoveryWindowInDays as number | undefined;
    if (force && window !== undefined) {
      throw new AwsError(
        'InvalidParameterException',
        "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
      );
    }
    if (window !== undefined && (!Number.isInteger(window) || window < 7 || window > 30)) {
      throw new AwsError('InvalidParameterException', 'RecoveryWindowInDays must be 7-30.');
    }
    const s = this.#find(input.SecretId as string);
    this.#deny(key, 'DeleteSecret', s.name);
    const t = now();
    if (force) this.#secrets.delete(s.name);
    else s.deletedAt ??= t;
    return { ARN: s.arn, Name: s.name, DeletionDate: force ? t : t + (window ?? 30) * 86400 };
  }

  #describe(input: Record<string, unknown>, key: string): unknown {
    const s = this.#find(input.SecretId as string);
    this.#deny(key, 'DescribeSecret', s.name);
    return {
      ARN: s.arn,
      Name: s.name,
      CreatedDate: s.created,
      LastChangedDate: s.changed,
      ...(s.deletedAt !== undefined ? { DeletedDate: s.deletedAt } : {}),
      VersionIdsToStages: Object.fromEntries(
        [...s.versions.values()].filter((v) => v.stages.size > 0).map((v) => [v.id, [...v.stages]]),
      ),
    };
  }
}

// --- helpers ----------------------------------------------------------------------------------

function now(): number {
  return Math.round(Date.now()) / 1000; // epoch seconds, as AWS sends them
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/x-amz-json-1.1');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('x-amzn-RequestId', randomUUID());
  res.end(text);
}

function checkShape(op: SecretsManagerOperation, body: unknown): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AwsError('SerializationException', 'body must be a JSON object');
  }
  const shape = SHAPES[op];
  for (const [k, v] of Object.entries(body)) {
    const spec = shape[k];
    if (!spec) throw new AwsError('SerializationException', `Unrecognized field "${k}" for ${op}`);
    const t = Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
    if (t !== spec.type) throw new AwsError('SerializationException', `${k} must be a ${spec.type}`);
  }
  for (const [k, spec] of Object.entries(shape)) {
    if (spec.required && (body as Record<string, unknown>)[k] === undefined) {
      throw new AwsError('InvalidParameterException', `${k} is required for ${op}`);
    }
  }
  const b = body as Record<string, unknown>;
  if (typeof b.SecretString === 'string' && Buffer.byteLength(b.SecretString) > 65536) {
    throw new AwsError('InvalidParameterException', 'SecretString is longer than 65536 bytes');
  }
  if (typeof b.SecretBinary === 'string' && !/^[A-Za-z0-9+/]*={0,2}$/.test(b.SecretBinary)) {
    throw new AwsError('SerializationException', 'SecretBinary must be base64');
  }
}

function secretIdsOf(input: Record<string, unknown>): string[] {
  const ids: string[] = [];
  for (const k of ['SecretId', 'Name']) if (typeof input[k] === 'string') ids.push(input[k] as string);
  if (Array.isArray(input.SecretIdList))
    ids.push(...input.SecretIdList.filter((x): x is string => typeof x === 'string'));
  return ids;
}

function secretValueOf(input: Record<string, unknown>): { string?: string; binary?: string } {
  if (typeof input.SecretString === 'string') return { string: input.SecretString };
  if (typeof input.SecretBinary === 'string') return { binary: input.SecretBinary };
  return {};
}

function paginate<T>(items: T[], max: unknown, token: unknown, limit: number): { page: T[]; next?: string } {
  const size = max === undefined ? limit : (max as number);
  if (!Number.isInteger(size) || size < 1 || size > limit) {
    throw new AwsError('InvalidParameterException', `MaxResults must be 1-${limit}`);
  }
  let start = 0;
  if (token !== undefined) {
    const m = /^o:(\d+)$/.exec(Buffer.from(String(token), 'base64url').toString('utf8'));
    if (!m) throw new AwsError('InvalidNextTokenException', 'The NextToken value is invalid.');
    start = Number(m[1]);
  }
  const page = items.slice(start, start + size);
  const nextAt = start + size;
  return nextAt < items.length ? { page, next: Buffer.from(`o:${nextAt}`).toString('base64url') } : { page };
}

/**
 * SigV4 signature of an incoming request, computed here (not with the SDK's signer) so a signer
 * bug in the client shows up as a refusal. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
 */
function sigv4(
  req: IncomingMessage,
  body: Buffer,
  signedHeaders: string[],
  amzDate: string,
  scope: string,
  secretAccessKey: string,
): string {
  const url = new URL(req.url ?? '/', 'http://x');
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)])
    .sort(([a], [b]) => (a as string).localeCompare(b as string))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const headers = signedHeaders
    .map((h) => {
      const raw = req.headers[h];
      const v = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
      return `${h}:${String(v).trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const payloadHash = createHash('sha256').update(body).digest('hex');
  const canonical = [req.method, url.pathname, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const [date, region, service] = scope.split('/') as [string, string, string];
  let k = createHmac('sha256', `AWS4${secretAccessKey}`).update(date).digest();
  k = createHmac('sha256', k).update(region).digest();
  k = createHmac('sha256', k).update(service).digest();
  k = createHmac('sha256', k).update('aws4_request').digest();
  return createHmac('sha256', k).update(toSign).digest('hex');
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
