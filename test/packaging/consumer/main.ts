/**
 * A consumer app built only from the packed tarballs, as the READMEs show: core plus every
 * adapter and every subpath entry. It needs no backend: clients are lazy, and the one request it
 * makes goes to its own server on loopback. It proves that
 *  - every entry resolves and loads from dist/ (under NodeNext and Bundler typing),
 *  - the adapters share the app's one copy of core: a Tenant verified by core is accepted by
 *    every adapter's forTenant, and adapters' errors are core's TenantScopeError,
 *  - a forged tenant is refused by every adapter with NOT_A_TENANT.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ChainedJsonlAuditSink, verifyStream, withAnomalyDetection } from '@tenantscope/audit';
import { withOpenTelemetry } from '@tenantscope/audit/otel';
import { auditSchemaSql, PostgresAuditSink } from '@tenantscope/audit/postgres';
import { cliError, EXIT, exitCodeOf } from '@tenantscope/cli';
import {
  createVerifier,
  isTenantScopeError,
  MemoryAuditSink,
  StaticTenantDirectory,
  type Tenant,
  TenantScopeError,
  teeAuditSink,
  tenantScope,
} from '@tenantscope/core';
import { generateBindingKey, pg, scopedPool } from '@tenantscope/postgres';
import { QdrantClient, scopedQdrant } from '@tenantscope/qdrant';
import { scopedS3 } from '@tenantscope/s3';
import { secretsInjector } from '@tenantscope/secrets';
import { awsSecretsManager } from '@tenantscope/secrets/aws';
import { localMasterKey, postgresSecrets, postgresSecretsSql } from '@tenantscope/secrets/postgres';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { z } from 'zod';

function check(ok: unknown, what: string): void {
  if (!ok) throw new Error(`consumer check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const issuer = 'https://issuer.consumer.test';
const audience = 'http://127.0.0.1/mcp';
const verifier = await createVerifier({ issuer, audience, keys: { jwks: { keys: [jwk] } } });

// Adapters, constructed as their READMEs show. Nothing connects until used.
const db = scopedPool(new pg.Pool({ connectionString: 'postgres://app@127.0.0.1:1/none', max: 1 }), {
  bindingKey: generateBindingKey(),
});
const vectors = scopedQdrant(new QdrantClient({ url: 'http://127.0.0.1:1' }), {
  collection: 'docs',
  tenantField: 'tenant_id',
});
const files = scopedS3(new S3Client({ endpoint: 'http://127.0.0.1:1', region: 'us-east-1', forcePathStyle: true }), {
  bucket: 'files',
  prefix: (t) => `tenants/${t.id}/`,
});
const secrets = secretsInjector({
  provider: awsSecretsManager({
    client: new SecretsManagerClient({
      endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    }),
  }),
});
const pgSecrets = postgresSecrets({ db, masterKeys: localMasterKey('m1', randomBytes(32)) });
check(postgresSecretsSql().includes('CREATE TABLE'), '@tenantscope/secrets/postgres loads');
check(auditSchemaSql().includes('CREATE'), '@tenantscope/audit/postgres loads');
check(typeof PostgresAuditSink === 'function' && typeof verifyStream === 'function', 'audit entries load');

const memory = new MemoryAuditSink();
const audit = withOpenTelemetry(withAnomalyDetection(teeAuditSink(memory), {}));
check(typeof ChainedJsonlAuditSink === 'function', 'JSONL sink loads');

const scope = tenantScope({
  verifier,
  directory: new StaticTenantDirectory({ acme: { tools: ['whoami'] } }),
  audit,
  providers: { db: db.provider(), vectors: vectors.provider(), files: files.provider(), secrets: secrets.provider() },
  resourceName: audience,
});

let seen: Tenant | undefined;
scope.tool({
  name: 'whoami',
  description: "Names the caller's tenant.",
  input: { note: z.string().max(20).optional() },
  handler: (_args, ctx) => {
    seen = ctx.tenant;
    return { tenant: ctx.tenant.id, db: typeof ctx.db.query, files: typeof ctx.files.put };
  },
});

const http = createServer((req, res) => void scope.handle(req, res));
await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
const token = await new SignJWT({ tenant_id: 'acme' })
  .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
  .setIssuer(issuer)
  .setAudience(audience)
  .setSubject('agent-acme')
  .setIssuedAt()
  .setExpirationTime('5m')
  .setJti(crypto.randomUUID())
  .sign(privateKey);
const client = new Client({ name: 'consumer', version: '0.0.0' });
await client.connect(
  new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
);
const result = await client.callTool({ name: 'whoami', arguments: {} });
check(!result.isError && JSON.stringify(result.content).includes('acme'), 'a tool call over MCP HTTP is bound to acme');
await client.close();

const tenant = seen;
check(tenant !== undefined && tenant.id === 'acme', "the handler saw core's verified tenant");
if (tenant === undefined) throw new Error('unreachable');
// One copy of core: the verified tenant is accepted by every adapter.
check(db.forTenant(tenant) !== undefined, '@tenantscope/postgres accepts the verified tenant');
check(vectors.forTenant(tenant) !== undefined, '@tenantscope/qdrant accepts the verified tenant');
check(files.forTenant(tenant) !== undefined, '@tenantscope/s3 accepts the verified tenant');

// A forged tenant is refused by every adapter with core's own error class.
const forged = { id: 'acme' } as unknown as Tenant;
const refusals: [string, () => unknown][] = [
  ['postgres', () => db.forTenant(forged)],
  ['qdrant', () => vectors.forTenant(forged)],
  ['s3', () => files.forTenant(forged)],
  ['secrets/postgres', () => pgSecrets.get({ tenant: forged, id: 'api_key' })],
];
for (const [name, attempt] of refusals) {
  let error: unknown;
  try {
    await attempt();
  } catch (e) {
    error = e;
  }
  check(
    error instanceof TenantScopeError && isTenantScopeError(error) && error.code === 'NOT_A_TENANT',
    `@tenantscope/${name} refuses a forged tenant with core's NOT_A_TENANT`,
  );
}
check(
  memory.events.some((e) => e.event_type === 'tool_call'),
  'the call was audited',
);

// The CLI's library entry shares the app's core: its errors are core's TenantScopeError.
const usage = cliError('CLI_USAGE', 'consumer');
check(
  usage instanceof TenantScopeError && exitCodeOf(usage) === EXIT.USAGE,
  '@tenantscope/cli throws core errors and maps them to exit codes',
);

await scope.close();
http.closeAllConnections();
await new Promise<void>((r) => http.close(() => r()));
await db.end();
console.log(`consumer ran on node ${process.version}`);
