import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import { type AuditEvent, createVerifier, type Tenant } from '@tenantscope/core';
import { pg, readBindingKey, type ScopedPool, scopedPool, type TenantData, tenantData } from '@tenantscope/postgres';
import { type ScopedQdrant, scopedQdrant } from '@tenantscope/qdrant';
import { type ScopedS3, scopedS3 } from '@tenantscope/s3';
import { type SecretsInjector, secretsInjector } from '@tenantscope/secrets';
import { type AwsSecretsManagerProvider, awsSecretsManager } from '@tenantscope/secrets/aws';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type AuditBackend, openAudit } from '../audit/backend.ts';
import { cliError } from '../errors.ts';
import { type DsarConfig, postgresUrl } from './config.ts';

/** Everything a DSAR command talks to, opened from the config; `close()` ends it all. */
export interface Stores {
  cfg: DsarConfig;
  /** Unscoped admin connection (job records only; never tenant data). */
  admin: pg.Pool;
  scoped: ScopedPool;
  /** The configured audit log (JSONL or Postgres). */
  audit: AuditBackend;
  postgres: TenantData;
  /** The S3 store, when configured. */
  s3: ScopedS3 | undefined;
  /** The Qdrant store, when configured. */
  qdrant: ScopedQdrant | undefined;
  /** The secrets store, when configured. */
  secrets: SecretsInjector | undefined;
  /** A verified Tenant for the operator (see `operatorTenants`). */
  tenant(id: string): Promise<Tenant>;
  /** Where the stores above point for the tenant a command works on (set by `placedStores`). */
  placements?: Record<string, { tier: 'shared' | 'dedicated'; target: string | null }>;
  /** Runs `fn` at `close()` (pools opened later, e.g. a tenant's own database). */
  onClose(fn: () => Promise<unknown>): void;
  close(): Promise<void>;
}

/**
 * Adapters only accept a verified Tenant. The CLI is the operator (it holds the database
 * credentials), so it signs a short-lived token with a throw-away key that only this process's
 * verifier trusts, and hands the adapters the Tenant that verifier returns.
 */
async function operatorTenants(actor: string): Promise<(id: string) => Promise<Tenant>> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const kid = randomUUID();
  const issuer = 'urn:tenantscope:cli';
  const audience = 'urn:tenantscope:cli:dsar';
  const verifier = await createVerifier({
    issuer,
    audience,
    keys: { jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'EdDSA' }] } },
    maxLifetimeSeconds: 3600,
  });
  return async (id) => {
    const token = await new SignJWT({ tenant_id: id })
      .setProtectedHeader({ alg: 'EdDSA', kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(actor)
      .setIssuedAt()
      .setExpirationTime('1h')
      .setJti(randomUUID())
      .sign(privateKey);
    return verifier.verify(token);
  };
}

/**
 * Every tenant table must be confined by row-level security for this role, or a "delete of one
 * tenant" would be a delete of every tenant: refuses a superuser or BYPASSRLS role, a table without
 * RLS, and a table this role owns without FORCE ROW LEVEL SECURITY. Nothing is touched before this.
 */
export async function assertRlsApplies(admin: pg.Pool, cfg: DsarConfig): Promise<void> {
  const role = (
    await admin.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
      'SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user',
    )
  ).rows[0];
  if (!role || role.rolsuper || role.rolbypassrls) {
    throw cliError(
      'CLI_CONFIG_INVALID',
      "dsar.postgres.url: this role bypasses row-level security (superuser or BYPASSRLS); use the tables' owner or the app role",
    );
  }
  for (const [i, t] of cfg.postgres.tables.entries()) {
    const field = `dsar.postgres.tables.${i}.name`;
    const state = await confinement(admin, t.name);
    if (state === 'missing') throw cliError('CLI_CONFIG_INVALID', `${field}: no table ${t.name}`);
    if (state === 'unconfined') {
      throw cliError('CLI_CONFIG_INVALID', `${field}: ${t.name} is not confined by row-level security for this role`);
    }
  }
}

/** Whether row-level security confines `table` for the connecting role (RLS on; FORCE when the role owns it). */
export async function confinement(admin: pg.Pool, table: string): Promise<'missing' | 'unconfined' | 'confined'> {
  const r = (
    await admin.query<{ rls: boolean; force: boolean; owned: boolean }>(
      `SELECT c.relrowsecurity AS rls, c.relforcerowsecurity AS force, pg_has_role(current_user, c.relowner, 'USAGE') AS owned
         FROM pg_class c WHERE c.oid = to_regclass($1)`,
      [table],
    )
  ).rows[0];
  if (!r) return 'missing';
  return !r.rls || (r.owned && !r.force) ? 'unconfined' : 'confined';
}

export function qdrantStore(cfg: DsarConfig): ScopedQdrant | undefined {
  const c = cfg.qdrant;
  if (!c) return undefined;
  let apiKey: string | undefined;
  if (c.apiKeyEnv) {
    apiKey = process.env[c.apiKeyEnv];
    if (!apiKey) throw cliError('CLI_CONFIG_INVALID', `dsar.qdrant.apiKeyEnv: ${c.apiKeyEnv} is not set`);
  }
  const client = new QdrantClient({ url: c.url, ...(apiKey ? { apiKey } : {}), checkCompatibility: false });
  return scopedQdrant(client, { collection: c.collection, tenantField: c.tenantField });
}

/** Access keys from the env vars a store section names (both or neither), else the SDK's own chain. */
function awsCredentials(
  c: { accessKeyIdEnv?: string; secretAccessKeyEnv?: string },
  section: string,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  const env = (name: string | undefined, field: string) => {
    if (!name) return undefined;
    const v = process.env[name];
    if (!v) throw cliError('CLI_CONFIG_INVALID', `dsar.${section}.${field}: ${name} is not set`);
    return v;
  };
  const accessKeyId = env(c.accessKeyIdEnv, 'accessKeyIdEnv');
  const secretAccessKey = env(c.secretAccessKeyEnv, 'secretAccessKeyEnv');
  if (!accessKeyId !== !secretAccessKey) {
    throw cliError(
      'CLI_CONFIG_INVALID',
      `dsar.${section}: give both accessKeyIdEnv and secretAccessKeyEnv, or neither`,
    );
  }
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

/** The configured Secrets Manager provider (its `unscopedClient` is for operator checks only). */
export function secretsProvider(cfg: DsarConfig): AwsSecretsManagerProvider | undefined {
  const c = cfg.secrets;
  if (!c) return undefined;
  const credentials = awsCredentials(c, 'secrets');
  return awsSecretsManager({
    clientConfig: {
      region: c.region,
      ...(c.endpoint ? { endpoint: c.endpoint } : {}),
      ...(credentials ? { credentials } : {}),
    },
    // An erasure: no recovery window.
    deleteWithoutRecovery: true,
  });
}

function secretsStore(cfg: DsarConfig): SecretsInjector | undefined {
  const c = cfg.secrets;
  const provider = secretsProvider(cfg);
  if (!c || !provider) return undefined;
  const prefix = (t: Tenant) => c.prefix.replace('{tenant}', t.id);
  return secretsInjector({ provider, naming: (t, name) => `${prefix(t)}${name}`, tenantPrefix: prefix });
}

export function s3Store(cfg: DsarConfig): ScopedS3 | undefined {
  const c = cfg.s3;
  if (!c) return undefined;
  const credentials = awsCredentials(c, 's3');
  const client = new S3Client({
    region: c.region,
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    forcePathStyle: c.forcePathStyle ?? Boolean(c.endpoint),
    ...(credentials ? { credentials } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return scopedS3(client, { bucket: c.bucket, prefix: (t) => c.prefix.replace('{tenant}', t.id) });
}

/** The binding key: hex in the env var `env` names (`field` is that config field), else read with `admin`. */
export async function bindingKeyOf(env: string | undefined, field: string, admin: pg.Pool): Promise<Buffer> {
  if (env) {
    const hex = process.env[env];
    if (!hex) throw cliError('CLI_CONFIG_INVALID', `${field}: ${env} is not set`);
    return Buffer.from(hex, 'hex');
  }
  try {
    return await readBindingKey(admin);
  } catch (err) {
    throw cliError('CLI_STORE_FAILED', `postgres: cannot read the binding key (${(err as Error).message})`, {
      cause: err,
    });
  }
}

export async function openStores(cfg: DsarConfig): Promise<Stores> {
  const url = postgresUrl(cfg);
  const s3 = s3Store(cfg);
  const qdrant = qdrantStore(cfg);
  const secrets = secretsStore(cfg);
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  let bindingKey: Buffer;
  try {
    bindingKey = await bindingKeyOf(cfg.postgres.bindingKeyEnv, 'dsar.postgres.bindingKeyEnv', admin);
  } catch (err) {
    await admin.end().catch(() => undefined);
    throw err;
  }
  try {
    await assertRlsApplies(admin, cfg);
  } catch (err) {
    await admin.end().catch(() => undefined);
    throw err;
  }
  const scoped = scopedPool({ connectionString: url, max: 3 }, { bindingKey, pooler: cfg.postgres.pooler });
  const audit = openAudit(cfg);
  const tables = cfg.postgres.tables.map((t) => t.name);
  const mint = await operatorTenants(cfg.actor);
  const later: (() => Promise<unknown>)[] = [];
  return {
    cfg,
    admin,
    scoped,
    audit,
    postgres: tenantData(scoped, { tables, audit, actor: cfg.actor }),
    s3,
    qdrant,
    secrets,
    tenant: mint,
    onClose(fn) {
      later.push(fn);
    },
    async close() {
      await Promise.allSettled([scoped.end(), admin.end(), audit.close(), ...later.splice(0).map((fn) => fn())]);
      s3?.unscopedClient.destroy();
    },
  };
}

/** An operator event in the tenant's audit stream: numbers and hashes only, never a subject id. */
export async function writeOperatorEvent(
  s: Stores,
  tenantId: string,
  type: string,
  argsHash: string | null,
  details: Record<string, string | number>,
  timestamp = new Date().toISOString(),
): Promise<void> {
  const event: AuditEvent = {
    timestamp,
    tenant_id: tenantId,
    session_id: null,
    subject: s.cfg.actor,
    event_type: type,
    tool_name: null,
    args_hash: argsHash,
    result_status: 'ok',
    reason: null,
    latency_ms: 0,
    ip_address: null,
    details,
  };
  await s.audit.write(event);
}
