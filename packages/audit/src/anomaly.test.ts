import { type AuditEvent, MemoryAuditSink } from '@tenantscope/core';
import { describe, expect, it } from 'vitest';
import { sampleEvent } from '../../../test/audit/pg.ts';
import { type AnomalyAlert, AnomalyDetector, withAnomalyDetection } from './anomaly.ts';

const denied = (tenant: string, i: number): AuditEvent =>
  sampleEvent(tenant, i, { result_status: 'denied', reason: 'TOOL_NOT_FOUND' });

describe('anomaly detection', () => {
  it('a burst of denials raises exactly one alert per window, per tenant', async () => {
    const clock = { t: 1_000_000 };
    const alerts: AnomalyAlert[] = [];
    const inner = new MemoryAuditSink();
    const sink = withAnomalyDetection(inner, {
      denials: { threshold: 10, windowMs: 60_000 },
      now: () => clock.t,
      onAlert: (a) => {
        alerts.push(a);
      },
    });
    // 30 denials in 15 s: one alert
    for (let i = 0; i < 30; i++) {
      clock.t += 500;
      await sink.write(denied('acme', i));
    }
    // another tenant's denials below the threshold: nothing
    for (let i = 0; i < 9; i++) await sink.write(denied('globex', i));
    await sink.idle();
    expect(alerts.map((a) => [a.kind, a.tenant_id])).toEqual([['denial_burst', 'acme']]);
    // the next window: a second burst, one more alert
    clock.t += 60_000;
    for (let i = 0; i < 30; i++) {
      clock.t += 500;
      await sink.write(denied('acme', i));
    }
    await sink.idle();
    expect(alerts.filter((a) => a.kind === 'denial_burst')).toHaveLength(2);
    // slow denials (9 per window) never alert
    const slow = new AnomalyDetector({ denials: { threshold: 10, windowMs: 60_000 }, now: () => clock.t });
    let n = 0;
    for (let i = 0; i < 100; i++) {
      clock.t += 6_700;
      n += slow.observe(denied('initech', i)).length;
    }
    expect(n).toBe(0);
    // each alert is itself an audit event in the tenant's stream
    const recorded = inner.events.filter((e) => e.event_type === 'anomaly_alert');
    expect(recorded.map((e) => [e.tenant_id, e.reason])).toEqual([
      ['acme', 'DENIAL_BURST'],
      ['acme', 'DENIAL_BURST'],
    ]);
  });

  it('alerts on every tenant-override attempt and on auth failures per subject', () => {
    const clock = { t: 0 };
    const d = new AnomalyDetector({ authFailures: { threshold: 3, windowMs: 10_000 }, now: () => clock.t });
    const kinds = (e: AuditEvent) => d.observe(e).map((a) => `${a.kind}:${a.key ?? ''}`);
    expect(kinds(sampleEvent('acme', 1, { event_type: 'tenant_override', result_status: 'denied' }))).toEqual([
      'tenant_override:',
    ]);
    expect(kinds(sampleEvent('acme', 2, { event_type: 'tenant_override', result_status: 'denied' }))).toEqual([
      'tenant_override:',
    ]);
    const fail = (subject: string | null, ip: string) =>
      sampleEvent(null, 0, { event_type: 'auth_failure', result_status: 'denied', subject, ip_address: ip });
    const out: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.t += 100;
      out.push(...kinds(fail('bob', '10.0.0.1')), ...kinds(fail(null, '10.0.0.9')));
    }
    expect(out).toEqual(['auth_failures:bob', 'auth_failures:ip:10.0.0.9']);
  });

  it('flags a call-rate spike against the tenant baseline, once per bucket', () => {
    const clock = { t: 0 };
    const d = new AnomalyDetector({
      callRate: { bucketMs: 1000, factor: 5, minCalls: 20, warmupBuckets: 3 },
      now: () => clock.t,
    });
    let alerts: AnomalyAlert[] = [];
    const calls = (n: number) => {
      for (let i = 0; i < n; i++) alerts.push(...d.observe(sampleEvent('acme', i)));
    };
    for (let b = 0; b < 5; b++) {
      clock.t = b * 1000;
      calls(10); // baseline 10 per bucket
    }
    expect(alerts).toEqual([]);
    clock.t = 5000;
    calls(49);
    expect(alerts).toEqual([]);
    calls(100); // 50th call crosses 5 x 10
    expect(alerts.map((a) => [a.kind, a.count, a.baseline])).toEqual([['call_rate_spike', 50, 10]]);
    alerts = [];
    clock.t = 6000;
    calls(10);
    expect(alerts).toEqual([]);
  });

  it('keeps bounded state however many tenants it sees', () => {
    const d = new AnomalyDetector({ maxKeys: 100 });
    for (let i = 0; i < 5000; i++) {
      d.observe(denied(`t${i}`, i));
      d.observe(sampleEvent(`u${i}`, i));
      d.observe(sampleEvent(null, i, { event_type: 'auth_failure', subject: `s${i}` }));
    }
    expect(d.trackedKeys).toEqual({ denials: 100, authFailures: 100, callRate: 100 });
  });
});
