/**
 * Helpers shared by this package's tests (not exported from the package). A CallInfo here is
 * built the way core builds one, around a real verified Tenant from the testkit issuer.
 */
import { randomBytes } from 'node:crypto';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CallInfo, Tenant } from '@tenantscope/core';
import type { SecretsProvider, SecretValue, VersionSelector } from './provider.ts';

export interface SmConfig {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  source: string;
}

export function smClient(sm: SmConfig, overrides: { accessKeyId?: string; secretAccessKey?: string } = {}) {
  return new SecretsManagerClient({
    endpoint: sm.endpoint,
    region: sm.region,
    credentials: {
      accessKeyId: overrides.accessKeyId ?? sm.accessKeyId,
      secretAccessKey: overrides.secretAccessKey ?? sm.secretAccessKey,
    },
    // The SDK's default: a 5xx (moto answers an occasional 500 under 50 concurrent reads) is
    // retried as in production; 4xx answers, which the error tests assert, never are.
    maxAttempts: 3,
  });
}

/** A run-unique tenant id prefix, so suites sharing one server never collide. */
export function runId(): string {
  return `r${randomBytes(4).toString('hex')}`;
}

export interface FakeCall extends CallInfo {
  redactions: Set<string>;
  abort(): void;
}

/** A CallInfo as core builds it; `redactions` collects what the provider registered. */
export function callFor(tenant: Tenant, declared: readonly string[], toolName = 'test_tool'): FakeCall {
  const redactions = new Set<string>();
  const ac = new AbortController();
  const noop = () => {};
  return {
    tenant,
    subject: tenant.subject,
    sessionId: 'session',
    requestId: '1',
    toolName,
    declaredSecrets: Object.freeze([...declared]),
    signal: ac.signal,
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    addRedaction: (v: string) => {
      if (typeof v === 'string' && v.length >= 4) redactions.add(v);
    },
    redactions,
    abort: () => ac.abort(new Error('aborted by test')),
  };
}

/** Wraps a provider and counts every backend operation, to prove "nothing fetched". */
export function counting(inner: SecretsProvider): SecretsProvider & {
  counts: Record<string, number>;
  total(): number;
  reset(): void;
  delay: number;
} {
  const counts: Record<string, number> = {};
  const bump = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const self = {
    kind: inner.kind,
    counts,
    delay: 0,
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    async get(req: { tenant: Tenant; id: string; version?: VersionSelector }): Promise<SecretValue> {
      bump('get');
      if (self.delay) await new Promise((r) => setTimeout(r, self.delay));
      return inner.get(req);
    },
    async getMany(req: { tenant: Tenant; ids: readonly string[] }) {
      bump('getMany');
      return inner.getMany(req);
    },
    async list(req: { tenant: Tenant; prefix: string }) {
      bump('list');
      return inner.list(req);
    },
    async put(req: { tenant: Tenant; id: string; value: string }) {
      bump('put');
      return inner.put(req);
    },
    async delete(req: { tenant: Tenant; id: string }) {
      bump('delete');
      return inner.delete(req);
    },
  };
  return self;
}

/** Every spelling here could address another tenant's secret (or a different secret) somewhere. */
export const HOSTILE_NAMES: unknown[] = [
  'tenants/globex/mail_api_key',
  '../globex/mail_api_key',
  '../../tenants/globex/mail_api_key',
  '..',
  '.',
  'globex/mail_api_key',
  '/mail_api_key',
  'mail_api_key/',
  'mail_api_key/..',
  '..\\globex\\mail_api_key',
  'mail_api_key\\..\\..\\globex',
  '%2e%2e%2fglobex%2fmail_api_key',
  '..%2Fglobex%2Fmail_api_key',
  'tenants%2Fglobex%2Fmail_api_key',
  '%252e%252e%252fglobex',
  'mail%5Fapi%5Fkey',
  'mail_api_key%00',
  'mail_api_key\u0000',
  'mail_api_key\n',
  '\uFF0E\uFF0E\uFF0Fglobex\uFF0Fmail_api_key', // full-width ../globex/
  '..\u2215globex\u2215mail_api_key', // division slash
  '..\u2044globex\u2044mail_api_key', // fraction slash
  '..\u29F8globex', // big solidus
  'mail_api_k\u0435y', // Cyrillic e
  'mail_api_key\u200B', // zero-width space
  'mai\u0301l_api_key', // combining acute
  'ｍａｉｌ_api_key', // full-width letters (NFKC folds them to ASCII)
  'MAIL_API_KEY',
  'Mail_Api_Key',
  ' mail_api_key',
  'mail_api_key ',
  'mail api key',
  'mail.api.key',
  'mail_api_key@globex',
  'mail_api_key?VersionId=x',
  'mail_api_key#x',
  'mail_api_*',
  '*',
  'arn:aws:secretsmanager:us-east-1:000000000000:secret:tenants/globex/mail_api_key',
  '',
  'a'.repeat(65),
  '_mail',
  '-mail',
  '1mail',
  123,
  null,
  undefined,
  {},
  ['mail_api_key'],
  { toString: () => 'mail_api_key' },
];
