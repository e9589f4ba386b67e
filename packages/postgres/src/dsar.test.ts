import { isTenantScopeError, MemoryAuditSink } from '@tenantscope/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScopedPool, scopedPool, tenantData } from './index.ts';
import { type PgFixture, pgFixture } from './testing/fixture.ts';

let fx: PgFixture;
let scoped: ScopedPool;

beforeAll(async () => {
  fx = await pgFixture('dsar', ['acme', 'globex']);
  scoped = scopedPool(
    { connectionString: fx.db.appUrl, max: 3 },
    { bindingKey: fx.bindingKey, pooler: fx.pooler, multiplex: 2 },
  );
  const su = new pg.Client({ connectionString: fx.db.superUrl });
  await su.connect();
  await su.query(
    `INSERT INTO notes (tenant_id, body) SELECT t, t || '-note-' || i FROM unnest(ARRAY['acme','globex']) t, generate_series(1, 1500) i`,
  );
  await su.end();
});
afterAll(async () => {
  await scoped?.end();
  await fx?.close();
});

describe('tenant data operations (DSAR)', () => {
  it('counts one tenant, in one audited transaction', async () => {
    const audit = new MemoryAuditSink();
    const data = tenantData(scoped, { tables: ['customers', 'notes'], audit, actor: 'dpo@example.test' });
    expect(await data.count(await fx.tenant('acme'))).toEqual({ customers: 3, notes: 1500 });
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]).toMatchObject({
      tenant_id: 'acme',
      event_type: 'dsar_count',
      result_status: 'ok',
      subject: 'dpo@example.test',
    });
  });

  it('streams an export through a cursor on a non-pipelined connection: only that tenant, every row', async () => {
    const audit = new MemoryAuditSink();
    const data = tenantData(scoped, { tables: ['customers', 'notes'], audit, batchSize: 100 });
    const seen: Record<string, number> = {};
    const tenantsSeen = new Set<unknown>();
    for await (const { table, row } of data.export(await fx.tenant('acme'))) {
      seen[table] = (seen[table] ?? 0) + 1;
      tenantsSeen.add(row.tenant_id);
    }
    expect(seen).toEqual({ customers: 3, notes: 1500 });
    expect([...tenantsSeen]).toEqual(['acme']);
    expect(audit.events.map((e) => [e.event_type, e.result_status, e.reason])).toEqual([['dsar_export', 'ok', null]]);
  });

  it('an abandoned export is audited as abandoned', async () => {
    const audit = new MemoryAuditSink();
    const data = tenantData(scoped, { tables: ['notes'], audit, batchSize: 10 });
    let n = 0;
    for await (const _ of data.export(await fx.tenant('globex'))) {
      if (++n === 25) break;
    }
    expect(audit.events.map((e) => [e.event_type, e.result_status, e.reason])).toEqual([
      ['dsar_export', 'error', 'ABANDONED'],
    ]);
  });

  it('delete is refused and changes nothing when the audit cannot be written', async () => {
    const failing = { write: async () => Promise.reject(new Error('disk full')) };
    const data = tenantData(scoped, { tables: ['customers', 'notes'], audit: failing });
    const acme = await fx.tenant('acme');
    await expect(data.delete(acme)).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
    const audit = new MemoryAuditSink();
    expect(await tenantData(scoped, { tables: ['customers', 'notes'], audit }).count(acme)).toEqual({
      customers: 3,
      notes: 1500,
    });
  });

  it("deletes one tenant's rows in one audited transaction, leaving the others", async () => {
    const audit = new MemoryAuditSink();
    const data = tenantData(scoped, { tables: ['customers', 'notes'], audit });
    const acme = await fx.tenant('acme');
    const globex = await fx.tenant('globex');
    expect(await data.delete(acme)).toEqual({ customers: 3, notes: 1500 });
    expect(await data.count(acme)).toEqual({ customers: 0, notes: 0 });
    expect(await data.count(globex)).toEqual({ customers: 3, notes: 1500 });
    expect(audit.events.map((e) => [e.tenant_id, e.event_type, e.result_status])).toEqual([
      ['acme', 'dsar_delete', 'ok'],
      ['acme', 'dsar_count', 'ok'],
      ['globex', 'dsar_count', 'ok'],
    ]);
  });

  it('refuses a non-Tenant and bad table names', async () => {
    const data = tenantData(scoped, { tables: ['customers'], audit: new MemoryAuditSink() });
    await expect(data.count('acme' as never)).rejects.toMatchObject({ code: 'NOT_A_TENANT' });
    await expect(data.delete({ id: 'acme' } as never)).rejects.toMatchObject({ code: 'NOT_A_TENANT' });
    try {
      tenantData(scoped, { tables: ['customers; DROP TABLE notes'], audit: new MemoryAuditSink() });
      throw new Error('accepted');
    } catch (err) {
      expect(isTenantScopeError(err) && err.code).toBe('PG_IDENTIFIER_INVALID');
    }
  });
});
