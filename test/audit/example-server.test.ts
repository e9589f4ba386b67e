/**
 * Through the example CRM server (every plugin loaded), with the Postgres audit log:
 * 100 tool calls across 3 tenants give exact per-stream counts and verified chains, and a
 * scripted burst of denials raises exactly one alert per window (an audit event and one webhook).
 */
import { createServer, type Server } from 'node:http';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type AnomalyAlert, withAnomalyDetection } from '@tenantscope/audit';
import { PostgresAuditSink, PostgresAuditStore } from '@tenantscope/audit/postgres';
import { configFromEnv, type RunningCrmServer, startCrmServer } from '@tenantscope/example-crm-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient } from '../../examples/crm-server/src/client.ts';
import { type AuditTestDb, createAuditTestDb } from './pg.ts';

// Plugins that need PostgreSQL share the suite's server instead of starting their own.
process.env.DATABASE_URL ??= inject('databaseUrl');

const TENANTS = ['acme', 'globex', 'initech'] as const;
let db: AuditTestDb;
let server: RunningCrmServer;
let store: PostgresAuditStore;
let hook: Server;
const delivered: AnomalyAlert[] = [];
const clients = {} as Record<(typeof TENANTS)[number], Client>;

beforeAll(async () => {
  db = await createAuditTestDb(inject('databaseUrl'), 'example');
  store = new PostgresAuditStore({ pool: db.auditor });
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      delivered.push(JSON.parse(body) as AnomalyAlert);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  const addr = hook.address();
  const hookUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/alerts`;
  const audit = withAnomalyDetection(new PostgresAuditSink({ pool: db.writer }), {
    denials: { threshold: 10, windowMs: 60_000 },
    webhook: { url: hookUrl },
  });
  const config = await configFromEnv({ ...process.env, PORT: '0' });
  server = await startCrmServer(config, { audit, log: () => {} });
  const issuer = server.devIssuer;
  if (!issuer) throw new Error('example server is not in dev mode');
  for (const t of TENANTS)
    clients[t] = await connectClient(server.url, await issuer.mint({ tenant: t, subject: `agent-${t}` }));
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(Object.values(clients).map((c) => c.close()));
  await server?.close();
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  await db?.close();
});

describe('audit through the example server', () => {
  it('100 tool calls across 3 tenants: exact counts per stream, every chain verifies', async () => {
    const plan = { acme: 34, globex: 33, initech: 33 };
    await Promise.all(
      TENANTS.map(async (t) => {
        // 8 calls in flight per tenant (below the per-tenant concurrency limit)
        let left = plan[t];
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (left-- > 0) {
              const r = await clients[t].callTool({ name: 'whoami', arguments: {} });
              expect(r.isError).not.toBe(true);
            }
          }),
        );
      }),
    );
    for (const t of TENANTS) {
      const events = await store.events(t, 1000);
      expect(events.length, `${t} stream`).toBe(plan[t]);
      expect(events.every((e) => e.tenant_id === t && e.event_type === 'tool_call' && e.result_status === 'ok')).toBe(
        true,
      );
      expect(new Set(events.map((e) => e.request_id)).size).toBe(plan[t]);
    }
    const v = await store.verify();
    expect(v.streams.map((s) => [s.stream, s.ok, s.events, s.lastSeq])).toEqual([
      ['acme', true, 34, 34],
      ['globex', true, 33, 33],
      ['initech', true, 33, 33],
    ]);
  });

  it('a scripted burst of denials raises exactly one alert per window', async () => {
    const before = await store.count('acme');
    for (let i = 0; i < 25; i++) {
      const r = await clients.acme.callTool({ name: 'no_such_tool', arguments: { i } }).catch((e: Error) => e);
      expect(r instanceof Error || (r as { isError?: boolean }).isError === true).toBe(true);
    }
    await (server.audit as unknown as { idle(): Promise<void> }).idle();
    const events = (await store.events('acme', 1000)).slice(before - (await store.count('acme')));
    const denials = events.filter((e) => e.result_status === 'denied');
    const alerts = events.filter((e) => e.event_type === 'anomaly_alert');
    expect(denials).toHaveLength(25);
    expect(alerts.map((e) => e.reason)).toEqual(['DENIAL_BURST']);
    expect(delivered.map((a) => [a.kind, a.tenant_id, a.count])).toEqual([['denial_burst', 'acme', 10]]);
    // globex saw none of it
    expect((await store.events('globex', 1000)).some((e) => e.event_type === 'anomaly_alert')).toBe(false);
    expect((await store.verify('acme')).ok).toBe(true);
  });

  it('fails closed: when the audit log cannot be written, the call returns no result', async () => {
    const fn = 'tenantscope_audit.append(text[], timestamptz[], text[])';
    await db.owner.query(`REVOKE EXECUTE ON FUNCTION ${fn} FROM ${db.roles.writer}`);
    try {
      const r = await clients.globex.callTool({ name: 'whoami', arguments: {} }).catch((e: Error) => e);
      // the SDK reports the pipeline's error either as a JSON-RPC error or as an error result
      const text = r instanceof Error ? r.message : JSON.stringify(r);
      expect(r instanceof Error || (r as { isError?: boolean }).isError === true).toBe(true);
      expect(text).toContain('AUDIT_WRITE_FAILED');
      expect(text).not.toContain('tenant_id'); // whoami's result is withheld
    } finally {
      await db.owner.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${db.roles.writer}`);
    }
    const ok = await clients.globex.callTool({ name: 'whoami', arguments: {} });
    expect(ok.isError).not.toBe(true);
    expect((await store.verify('globex')).ok).toBe(true);
  });
});
