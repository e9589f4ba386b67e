import { mkdtemp, readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ChainedJsonlAuditSink, type VerifyReport, withAnomalyDetection } from '@tenantscope/audit';
import { withOpenTelemetry } from '@tenantscope/audit/otel';
import { setupPostgresAudit } from '@tenantscope/audit/postgres';
import {
  type AuditEvent,
  type AuditSink,
  createVerifier,
  JsonlAuditSink,
  type KeySource,
  loadTenantDirectory,
  MemoryRevocationStore,
  type ResourceProvider,
  type TenantScope,
  type TokenVerifier,
  teeAuditSink,
  tenantScope,
} from '@tenantscope/core';
import { createTestIssuer, type TestIssuer } from '@tenantscope/testkit';
import type { CrmPlugin, StartedPlugin } from './plugin.ts';
import { sharedPostgres } from './services.ts';

export * from './plugin.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_TENANTS_FILE = join(here, '..', 'tenants.json');

export interface CrmServerConfig {
  port: number;
  host: string;
  issuer: string;
  audience: string;
  jwksUrl?: string;
  jwksFile?: string;
  tenantsFile: string;
  auditDir: string;
}

/** Reads the example server's environment contract (see README). */
export async function configFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<CrmServerConfig> {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('PORT must be a TCP port');
  return {
    port,
    host: env.HOST ?? '127.0.0.1',
    issuer: env.TENANTSCOPE_ISSUER ?? 'https://dev-issuer.tenantscope.local',
    audience: env.TENANTSCOPE_AUDIENCE ?? `http://localhost:${port}/mcp`,
    jwksUrl: env.TENANTSCOPE_JWKS_URL || undefined,
    jwksFile: env.TENANTSCOPE_JWKS_FILE || undefined,
    tenantsFile: env.TENANTSCOPE_TENANTS_FILE || DEFAULT_TENANTS_FILE,
    auditDir: env.TENANTSCOPE_AUDIT_DIR || (await mkdtemp(join(tmpdir(), 'tenantscope-audit-'))),
  };
}

export interface RunningCrmServer {
  scope: TenantScope<Record<string, ResourceProvider<unknown>>>;
  http: Server;
  /** The MCP endpoint URL (the audience, with the actual port). */
  url: string;
  config: CrmServerConfig;
  /** Set in dev mode (no key configured): mints tokens for the example tenants. */
  devIssuer?: TestIssuer;
  /** The audit sink; with the default Postgres log it also verifies and reads streams. */
  audit: ExampleAuditSink;
  revocations: MemoryRevocationStore;
  plugins: StartedPlugin[];
  close(): Promise<void>;
}

/** Loads every plugin in `src/plugins/`, in `order`. */
export async function loadPlugins(): Promise<CrmPlugin[]> {
  const dir = join(here, 'plugins');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort();
  const plugins: CrmPlugin[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { plugin?: CrmPlugin };
    if (mod.plugin) plugins.push(mod.plugin);
  }
  return plugins.sort((a, b) => (a.order ?? 100) - (b.order ?? 100));
}

/** Starts the example server. With no key configured it runs in dev mode with its own issuer. */
export async function startCrmServer(
  config: CrmServerConfig,
  options: { env?: NodeJS.ProcessEnv; audit?: AuditSink; log?: (r: Record<string, unknown>) => void } = {},
): Promise<RunningCrmServer> {
  const http = createServer();
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => resolve());
  });
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const audience = config.audience.replace(/:0\//, `:${port}/`);
  const cfg = { ...config, port, audience };

  let devIssuer: TestIssuer | undefined;
  let keys: KeySource;
  if (cfg.jwksUrl) keys = { jwksUrl: cfg.jwksUrl };
  else if (cfg.jwksFile) keys = { jwksFile: cfg.jwksFile };
  else {
    devIssuer = await createTestIssuer({ issuer: cfg.issuer, audience });
    keys = { jwks: devIssuer.jwks };
  }
  const revocations = new MemoryRevocationStore();
  const verifier: TokenVerifier = await createVerifier({ issuer: cfg.issuer, audience, keys, revocations });
  const directory = await loadTenantDirectory(cfg.tenantsFile);
  const audit: ExampleAuditSink = options.audit ?? (await exampleAuditSink(cfg, options.env ?? process.env));

  const started: StartedPlugin[] = [];
  const env = options.env ?? process.env;
  try {
    for (const p of await loadPlugins()) started.push(await p.start(env));
  } catch (err) {
    await Promise.allSettled(started.map((s) => s.stop()));
    await audit.close?.().catch(() => undefined);
    http.close();
    throw err;
  }
  const providers: Record<string, ResourceProvider<unknown>> = {};
  for (const s of started) Object.assign(providers, s.providers ?? {});
  const scope = tenantScope({
    verifier,
    directory,
    audit,
    providers,
    serverInfo: { name: 'tenantscope-crm-example', version: '0.1.0' },
    resourceName: 'tenantscope CRM example',
    log: options.log,
  });
  for (const s of started) for (const t of s.tools) scope.tool(t);

  http.on('request', (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (devIssuer && path === '/.well-known/jwks.json') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(devIssuer.jwks));
      return;
    }
    void scope.handle(req, res);
  });

  return {
    scope,
    http,
    url: audience,
    config: cfg,
    devIssuer,
    audit,
    revocations,
    plugins: started,
    async close() {
      await scope.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await Promise.allSettled(started.map((s) => s.stop()));
      await audit.close?.();
    },
  };
}

/** An audit sink as the example server exposes it. */
export type ExampleAuditSink = AuditSink & {
  /** JSONL sink only: the file of one tenant's stream. */
  pathFor?(tenant: string | null): string;
  /** Postgres log only: recompute one tenant's chain, or every chain. */
  verify?(tenant?: string | null): Promise<VerifyReport>;
  /** Postgres log only: the last events of one tenant's stream, oldest first. */
  events?(tenant: string | null, limit?: number): Promise<AuditEvent[]>;
};

/**
 * The example's audit: the hash-chained Postgres log on the shared PostgreSQL (database
 * `tenantscope_audit`), with anomaly alerts and OpenTelemetry spans, and chain heads anchored
 * every minute and on close; every event is also written to hash-chained JSONL files in
 * `TENANTSCOPE_AUDIT_DIR` (`<tenant>/<YYYY-MM-DD>.jsonl`). A call returns only when both have it.
 * `TENANTSCOPE_AUDIT_SINK=jsonl` uses core's plain JSONL files (`<tenant>.jsonl`) alone instead.
 */
async function exampleAuditSink(cfg: CrmServerConfig, env: NodeJS.ProcessEnv): Promise<ExampleAuditSink> {
  if (env.TENANTSCOPE_AUDIT_SINK === 'jsonl') return new JsonlAuditSink({ dir: cfg.auditDir });
  const pg = await sharedPostgres();
  try {
    const log = await setupPostgresAudit({ adminUrl: pg.url });
    const stopAnchoring = log.store.startAnchoring(60_000);
    const files = new ChainedJsonlAuditSink({ dir: cfg.auditDir });
    const sink = withOpenTelemetry(withAnomalyDetection(teeAuditSink(log.sink, files)));
    return {
      write: (event) => sink.write(event),
      verify: (tenant) => log.verify(tenant),
      events: (tenant, limit) => log.events(tenant, limit),
      async close() {
        stopAnchoring();
        await log.sink.flush();
        await log.anchor().catch(() => undefined);
        await log.close();
        await files.close();
        await pg.release();
      },
    };
  } catch (err) {
    await pg.release();
    throw err;
  }
}
