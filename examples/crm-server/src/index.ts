import { mkdtemp, readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer } from 'node:net';
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
  type ResourceProvider,
  type RevocationStore,
  type TenantScope,
  type TokenVerifier,
  teeAuditSink,
  tenantScope,
} from '@tenantscope/core';
import { PostgresCallLimiter, PostgresRevocationStore, pg, replicaStateSql } from '@tenantscope/postgres';
import { createTestIssuer, type TestIssuer } from '@tenantscope/testkit';
import { apiKeysFromEnv } from './api-keys.ts';
import { adminHandler, SubjectRevocations, withSubjectRevocation } from './ops.ts';
import type { CrmPlugin, StartedPlugin } from './plugin.ts';
import { directPostgresUrl, poolerFromEnv, sharedPostgres } from './services.ts';

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
  /** `TENANTSCOPE_MCP_MODE`: `session` (default) or `stateless` (any replica serves any request). */
  mode: 'session' | 'stateless';
  /** `TENANTSCOPE_SESSION_IDLE_TIMEOUT_MS`, `TENANTSCOPE_MAX_SESSIONS_PER_TENANT`, `TENANTSCOPE_MAX_SESSIONS`. */
  sessionIdleTimeoutMs?: number;
  maxSessionsPerTenant?: number;
  maxSessions?: number;
  /** `TENANTSCOPE_ADMIN_TOKEN`: the admin endpoint's credential; unset, there is no admin endpoint. */
  adminToken?: string;
  /** `TENANTSCOPE_DRAIN_TIMEOUT_MS`: how long in-flight requests get on shutdown. Default 10,000. */
  drainTimeoutMs: number;
  /** `TENANTSCOPE_STATE_CACHE_MS`: longest a replica trusts a cached "not revoked/halted" (LISTEN/NOTIFY is faster). Default 1000. */
  stateCacheMs: number;
  /** `TENANTSCOPE_STATE_SCHEMA`: schema of the shared replica state. Default `tenantscope_state`. */
  stateSchema?: string;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}`);
  return n;
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
    mode: modeFromEnv(env.TENANTSCOPE_MCP_MODE),
    sessionIdleTimeoutMs: intFromEnv(env, 'TENANTSCOPE_SESSION_IDLE_TIMEOUT_MS', 1000),
    maxSessionsPerTenant: intFromEnv(env, 'TENANTSCOPE_MAX_SESSIONS_PER_TENANT', 1),
    maxSessions: intFromEnv(env, 'TENANTSCOPE_MAX_SESSIONS', 1),
    adminToken: env.TENANTSCOPE_ADMIN_TOKEN || undefined,
    drainTimeoutMs: intFromEnv(env, 'TENANTSCOPE_DRAIN_TIMEOUT_MS', 0) ?? 10_000,
    stateCacheMs: intFromEnv(env, 'TENANTSCOPE_STATE_CACHE_MS', 0) ?? 1000,
    stateSchema: env.TENANTSCOPE_STATE_SCHEMA || undefined,
  };
}

function modeFromEnv(v: string | undefined): 'session' | 'stateless' {
  if (v === undefined || v === '' || v === 'session') return 'session';
  if (v === 'stateless') return v;
  throw new Error("TENANTSCOPE_MCP_MODE must be 'session' or 'stateless'");
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
  /** Token revocations and tenant halts, shared by every replica on the same PostgreSQL. */
  revocations: RevocationStore;
  /** Revoked subjects, shared the same way. */
  subjects: SubjectRevocations;
  plugins: StartedPlugin[];
  /** Drains (503 + Retry-After to new requests, in-flight ones finish), then stops everything and flushes audit. */
  close(): Promise<void>;
}

/**
 * Loads the plugins in `src/plugins/`, in `order`: every one, or only the files named in
 * `TENANTSCOPE_PLUGINS` (comma-separated, e.g. `core-tools,postgres`); the others are not even imported.
 */
export async function loadPlugins(env: NodeJS.ProcessEnv = process.env): Promise<CrmPlugin[]> {
  const dir = join(here, 'plugins');
  const only = env.TENANTSCOPE_PLUGINS ? new Set(env.TENANTSCOPE_PLUGINS.split(',').map((s) => s.trim())) : undefined;
  const files = (await readdir(dir))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && (!only || only.has(f.slice(0, -3))))
    .sort();
  const plugins: CrmPlugin[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { plugin?: CrmPlugin };
    if (mod.plugin) plugins.push(mod.plugin);
  }
  return plugins.sort((a, b) => (a.order ?? 100) - (b.order ?? 100));
}

/**
 * Starts the example server. With no key configured it runs in dev mode with its own issuer.
 * The port answers from the first moment: `/healthz` 200, `/readyz` and MCP 503 with
 * `Retry-After` until everything is started, so no request ever waits on a half-started replica.
 */
export async function startCrmServer(
  config: CrmServerConfig,
  options: { env?: NodeJS.ProcessEnv; audit?: AuditSink; log?: (r: Record<string, unknown>) => void } = {},
): Promise<RunningCrmServer> {
  let route: ((req: IncomingMessage, res: ServerResponse) => Promise<void>) | undefined;
  let draining = false;
  const http = createServer((req, res) => {
    // Draining: no connection is kept for a next request that this replica would refuse.
    if (draining) res.setHeader('Connection', 'close');
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz') return sendStatus(res, 200, 'ok');
    if (path === '/readyz') return route && !draining ? sendStatus(res, 200, 'ready') : unavailable(res);
    if (!route) return unavailable(res);
    route(req, res).catch((err) => {
      log({ level: 'error', time: new Date().toISOString(), msg: 'request failed', error: String(err) });
      if (!res.headersSent) sendStatus(res, 500, 'internal error');
      else res.end();
    });
  });
  const log = options.log ?? ((r: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(r)}\n`));
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => resolve());
  });
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const audience = config.audience.replace(/:0\//, `:${port}/`);
  const cfg = { ...config, port, audience };
  const env = options.env ?? process.env;
  const cleanup: (() => Promise<unknown>)[] = [async () => http.listening && http.close()];
  const unwind = async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  };

  try {
    let devIssuer: TestIssuer | undefined;
    let keys: KeySource;
    if (cfg.jwksUrl) keys = { jwksUrl: cfg.jwksUrl };
    else if (cfg.jwksFile) keys = { jwksFile: cfg.jwksFile };
    else {
      devIssuer = await createTestIssuer({ issuer: cfg.issuer, audience });
      keys = { jwks: devIssuer.jwks };
    }
    // Revocations, halts, revoked subjects and call rates live in PostgreSQL, shared by every
    // replica given the same DATABASE_URL; LISTEN/NOTIFY carries changes to the others at once.
    const pgServer = await sharedPostgres();
    cleanup.push(() => pgServer.release());
    const statePool = new pg.Pool({ connectionString: pgServer.url, max: 4 });
    statePool.on('error', () => {}); // idle connections dropped at server shutdown
    cleanup.push(() => statePool.end());
    const schema = cfg.stateSchema;
    const revocations = new PostgresRevocationStore(statePool, {
      schema,
      cacheMs: cfg.stateCacheMs,
      // LISTEN needs a session of its own: PostgreSQL itself, not a transaction pooler.
      listenConnectionString: directPostgresUrl(pgServer.url, env),
    });
    cleanup.push(() => revocations.close());
    const subjects = new SubjectRevocations(statePool, { schema, cacheMs: Math.min(cfg.stateCacheMs, 100) });
    await migrateState(statePool, subjects, schema);
    if (!(await revocations.listening(5000))) {
      log({
        level: 'warn',
        time: new Date().toISOString(),
        msg: `LISTEN not active: polling every ${cfg.stateCacheMs} ms`,
      });
    }
    const verifier: TokenVerifier = withSubjectRevocation(
      // TENANTSCOPE_API_KEYS=1: API keys (tsk_…) beside JWTs, in the same state database.
      await apiKeysFromEnv(
        await createVerifier({ issuer: cfg.issuer, audience, keys, revocations }),
        statePool,
        revocations,
        schema,
        env,
      ),
      subjects,
    );
    const directory = await loadTenantDirectory(cfg.tenantsFile);
    const audit: ExampleAuditSink = options.audit ?? (await exampleAuditSink(cfg, env));
    cleanup.push(async () => audit.close?.());

    const started: StartedPlugin[] = [];
    cleanup.push(() => Promise.allSettled(started.map((s) => s.stop())));
    for (const p of await loadPlugins(env)) started.push(await p.start(env));
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
      mode: cfg.mode,
      limiter: new PostgresCallLimiter(statePool, { schema }),
      limits: {
        sessionIdleTimeoutMs: cfg.sessionIdleTimeoutMs,
        maxSessionsPerTenant: cfg.maxSessionsPerTenant,
        maxSessions: cfg.maxSessions,
      },
    });
    for (const s of started) for (const t of s.tools) scope.tool(t);
    cleanup.push(() => scope.close());
    const admin = adminHandler({ token: cfg.adminToken, revocations, subjects, log, audit });

    route = async (req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (devIssuer && path === '/.well-known/jwks.json') {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify(devIssuer.jwks));
        return;
      }
      if (await admin(req, res)) return;
      await scope.handle(req, res);
    };

    return {
      scope,
      http,
      url: audience,
      config: cfg,
      devIssuer,
      audit,
      revocations,
      subjects,
      plugins: started,
      async close() {
        draining = true; // /readyz turns 503 so balancers stop sending
        const drained = await scope.drain(cfg.drainTimeoutMs);
        if (!drained) log({ level: 'warn', time: new Date().toISOString(), msg: 'drain timed out' });
        // Stop accepting; a connection already accepted still gets its request answered (503,
        // Connection: close) before it goes. http.Server#close would drop such a connection as idle.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1000);
          NetServer.prototype.close.call(http, () => {
            clearTimeout(t);
            resolve();
          });
        });
        http.closeAllConnections();
        await unwind(); // in reverse: MCP sessions, plugins, audit (flushed), state, PostgreSQL, listener
      },
    };
  } catch (err) {
    http.closeAllConnections();
    await unwind();
    throw err;
  }
}

/** Creates the replica-state tables once (an advisory lock serialises replicas starting together). */
async function migrateState(
  pool: InstanceType<typeof pg.Pool>,
  subjects: SubjectRevocations,
  schema: string | undefined,
): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT pg_advisory_xact_lock(hashtext('tenantscope.replica-state'))`);
    await c.query(replicaStateSql({ schema }));
    await c.query(subjects.sql());
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

function sendStatus(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify({ status: text }));
}

function unavailable(res: ServerResponse): void {
  res.setHeader('Retry-After', '1');
  sendStatus(res, 503, 'starting or stopping');
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
    const log = await setupPostgresAudit({ adminUrl: pg.url, pooler: poolerFromEnv(env) });
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
