/**
 * The example's admin endpoint records every decision in the audit trail: an action in the affected
 * tenant's stream, a refusal after the admin credential matched in that stream or the one with no
 * tenant, and a wrong credential in the unauthenticated stream, rate-bounded.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuditEvent, MemoryRevocationStore } from '@tenantscope/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminHandler, type SubjectRevocations } from '../../examples/crm-server/src/ops.ts';

const TOKEN = 'admin-secret-for-tests-0123456789';
const events: AuditEvent[] = [];
let failWrites = false;
const revocations = new MemoryRevocationStore();
const subjects = {
  revoke: async () => undefined,
  restore: async () => undefined,
} as unknown as SubjectRevocations;
let server: Server;
let base: string;

beforeAll(async () => {
  const handle = adminHandler({
    token: TOKEN,
    revocations,
    subjects,
    log: () => undefined,
    audit: {
      write: async (e) => {
        if (failWrites) throw new Error('disk full');
        events.push(e);
      },
    },
  });
  server = createServer((req, res) => {
    void handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const post = (path: string, body: unknown, token = TOKEN, method = 'POST') =>
  fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: method === 'POST' ? JSON.stringify(body) : undefined,
  });

describe('admin endpoint audit', () => {
  it("a halt is recorded in the tenant's stream, after it took effect", async () => {
    events.length = 0;
    const r = await post('/admin/halt', { tenant: 'acme', reason: 'drill' });
    expect(r.status).toBe(200);
    expect(await revocations.isTenantHalted('acme')).toBeTruthy();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant_id: 'acme',
      subject: 'operator',
      event_type: 'admin_action',
      result_status: 'ok',
      details: { action: 'halt' },
    });
    await post('/admin/resume', { tenant: 'acme' });
    expect(events.at(-1)).toMatchObject({ tenant_id: 'acme', result_status: 'ok', details: { action: 'resume' } });
  });

  it('every refusal after the credential matched is recorded, one event per request', async () => {
    events.length = 0;
    const answers = [
      (await post('/admin/halt', { tenant: 'Not A Tenant!' })).status,
      (await post('/admin/halt', { tenant: 'acme', reason: 7 })).status,
      (await post('/admin/no-such-action', {})).status,
      (await post('/admin/halt', undefined, TOKEN, 'GET')).status,
    ];
    expect(answers).toEqual([400, 400, 404, 405]);
    expect(events.map((e) => [e.tenant_id, e.result_status, e.reason])).toEqual([
      [null, 'denied', 'INVALID_ARGUMENT'],
      ['acme', 'denied', 'INVALID_ARGUMENT'],
      [null, 'denied', 'NOT_FOUND'],
      [null, 'denied', 'METHOD_NOT_ALLOWED'],
    ]);
    expect(await revocations.isTenantHalted('acme')).toBeFalsy();
  });

  it('a wrong credential is recorded in the unauthenticated stream, and that stream is bounded', async () => {
    events.length = 0;
    const r = await post('/admin/halt', { tenant: 'globex' }, 'wrong-token');
    expect(r.status).toBe(401);
    expect(await revocations.isTenantHalted('globex')).toBeFalsy();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ tenant_id: null, subject: null, result_status: 'denied', reason: 'ADMIN_AUTH' });
    for (let i = 0; i < 150; i++)
      expect((await post('/admin/halt', { tenant: 'globex' }, `bad-${i}`)).status).toBe(401);
    expect(events.length).toBeLessThanOrEqual(100);
  });

  it('an action whose event cannot be written answers 500, never 200', async () => {
    failWrites = true;
    try {
      const r = await post('/admin/revoke-token', { jti: 'j-1' });
      expect(r.status).toBe(500);
      expect(await r.text()).not.toContain('disk full');
    } finally {
      failWrites = false;
    }
  });
});
