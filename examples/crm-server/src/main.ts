import { configFromEnv, EXAMPLE_TENANTS, startCrmServer } from './index.ts';

const config = await configFromEnv();
const server = await startCrmServer(config);
console.log(`tenantscope CRM example: MCP at ${server.url}`);
console.log(`protected resource metadata: ${new URL(server.scope.metadataPath, server.url)}`);
console.log(`audit streams: ${server.config.auditDir}`);
console.log(`ready (${server.config.mode} mode): /healthz and /readyz on ${new URL('/', server.url)}`);
if (server.devIssuer) {
  console.log('\ndev mode: no key configured, so this server made its own signing key.');
  console.log(`its JWKS: ${new URL('/.well-known/jwks.json', server.url)}\n`);
  for (const tenant of EXAMPLE_TENANTS) {
    const token = await server.devIssuer.mint({ tenant, subject: `dev-agent-${tenant}`, ttlSeconds: 3600 });
    console.log(`token for ${tenant} (1 h):\n${token}\n`);
  }
  const sample = await server.devIssuer.mint({ tenant: 'acme', subject: 'dev-agent-acme', ttlSeconds: 3600 });
  console.log('client config (paste into an MCP client that speaks Streamable HTTP):');
  console.log(
    JSON.stringify(
      {
        mcpServers: {
          'tenantscope-acme': { type: 'http', url: server.url, headers: { Authorization: `Bearer ${sample}` } },
        },
      },
      null,
      2,
    ),
  );
}
// SIGTERM: /readyz turns 503, new requests get 503 + Retry-After, in-flight calls finish (within
// TENANTSCOPE_DRAIN_TIMEOUT_MS), audit sinks are flushed, then exit 0.
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining`);
  const hard = setTimeout(() => {
    console.error('shutdown took too long');
    process.exit(1);
  }, server.config.drainTimeoutMs + 15_000);
  hard.unref();
  try {
    await server.close();
  } catch (err) {
    console.error('shutdown failed', err);
    process.exit(1);
  }
  console.log('stopped');
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
