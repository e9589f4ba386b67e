import { EXAMPLE_TENANTS, configFromEnv, startCrmServer } from './index.ts';

const config = await configFromEnv();
const server = await startCrmServer(config);
console.log(`tenantscope CRM example: MCP at ${server.url}`);
console.log(`protected resource metadata: ${new URL(server.scope.metadataPath, server.url)}`);
console.log(`audit streams: ${server.config.auditDir}`);
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
const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
