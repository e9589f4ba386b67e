import { describe, expect, it } from 'vitest';
import { sampleEvent } from '../../../test/audit/pg.ts';
import { prepareEvent } from './event.ts';

describe('prepareEvent (what is stored)', () => {
  it('truncates client addresses by default, keeps or drops them on request', () => {
    expect(prepareEvent(sampleEvent('acme', 1, { ip_address: '203.0.113.77' })).event.ip_address).toBe(
      '203.0.113.0/24',
    );
    expect(prepareEvent(sampleEvent('acme', 1, { ip_address: '::ffff:203.0.113.77' })).event.ip_address).toBe(
      '203.0.113.0/24',
    );
    expect(prepareEvent(sampleEvent('acme', 1, { ip_address: '2001:db8:abcd:12::1' })).event.ip_address).toBe(
      '2001:db8:abcd::/48',
    );
    expect(prepareEvent(sampleEvent('acme', 1, { ip_address: 'not-an-ip' })).event.ip_address).toBeNull();
    expect(prepareEvent(sampleEvent('acme', 1), { ipAddress: 'keep' }).event.ip_address).toBe('10.1.2.3');
    expect(prepareEvent(sampleEvent('acme', 1), { ipAddress: 'drop' }).event.ip_address).toBeNull();
  });

  it('pseudonymizes the subject with a keyed HMAC when asked (stable per key, unlinkable across keys)', () => {
    const a = prepareEvent(sampleEvent('acme', 1, { subject: 'jane@example.com' }), {
      subject: 'pseudonymize',
      pseudonymKey: 'k1',
    }).event.subject;
    const b = prepareEvent(sampleEvent('acme', 2, { subject: 'jane@example.com' }), {
      subject: 'pseudonymize',
      pseudonymKey: 'k1',
    }).event.subject;
    const c = prepareEvent(sampleEvent('acme', 3, { subject: 'jane@example.com' }), {
      subject: 'pseudonymize',
      pseudonymKey: 'k2',
    }).event.subject;
    expect(a).toMatch(/^hmac:[0-9a-f]{32}$/);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(() => prepareEvent(sampleEvent('acme', 1), { subject: 'pseudonymize' })).toThrow(/pseudonymKey/);
  });

  it('drops unknown fields, refuses argument values and malformed events, and is canonical JSON', () => {
    const p = prepareEvent({ ...sampleEvent('acme', 1), arguments: { ssn: '078-05-1120' } } as never);
    expect(p.canonical).not.toContain('078-05-1120');
    expect(p.canonical.startsWith('{"args_hash":"sha256:')).toBe(true);
    expect(() => prepareEvent(sampleEvent('acme', 1, { args_hash: 'plain text' }))).toThrow(/args_hash/);
    expect(() => prepareEvent(sampleEvent('acme', 1, { timestamp: 'yesterday' }))).toThrow(/timestamp/);
    expect(() => prepareEvent(sampleEvent('Acme Corp', 1))).toThrow();
    expect(() => prepareEvent({ ...sampleEvent('acme', 1), details: { nested: { a: 1 } } } as never)).toThrow(
      /scalars/,
    );
  });
});
