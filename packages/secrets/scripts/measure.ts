/**
 * Measures a `ctx.secrets.get` served from the cache, one that misses (ttl 0: a provider fetch),
 * and the raw SDK GetSecretValue it wraps, against the testkit's SecretsManagerProtocolDouble on
 * loopback (or SECRETS_MANAGER_ENDPOINT). Run: bash scripts/with-toolchain.sh node packages/secrets/scripts/measure.ts
 */
import { performance } from 'node:perf_hooks';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CallInfo } from '@tenantscope/core';
import { createTestIssuer, SecretsManagerProtocolDouble } from '@tenantscope/testkit';
import { awsSecretsManager } from '../src/aws.ts';
import { secretsInjector } from '../src/index.ts';

const N = Number(process.env.N ?? 2000);
let double: SecretsManagerProtocolDouble | undefined;
let endpoint = process.env.SECRETS_MANAGER_ENDPOINT;
if (!endpoint) {
  double = new SecretsManagerProtocolDouble();
  endpoint = await double.start();
}
const client = new SecretsManagerClient({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const issuer = await createTestIssuer();
const tenant = await issuer.tenant(`bench-${Date.now()}`);
const provider = awsSecretsManager({ client });
await secretsInjector({ provider }).unscopedAdmin(tenant).put('api_key', 'bench-secret-value-0001');
const call = (): CallInfo => ({
  tenant,
  subject: 's',
  sessionId: 's',
  requestId: '1',
  toolName: 't',
  declaredSecrets: ['api_key'],
  signal: new AbortController().signal,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
  addRedaction() {},
});

async function time(label: string, fn: () => Promise<unknown>, n: number, print = true): Promise<number> {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const us = ((performance.now() - t0) / n) * 1000;
  if (print && process.env.VERBOSE) console.log(`${label.padEnd(44)} ${us.toFixed(1).padStart(9)} µs/op  (${n} ops)`);
  return us;
}

console.log(`Secrets Manager: ${double ? 'SecretsManagerProtocolDouble (loopback)' : endpoint}`);
const cold = secretsInjector({ provider, ttl: 0 }).provider();
const warm = secretsInjector({ provider }).provider();
const rawFn = () =>
  client.send(new GetSecretValueCommand({ SecretId: `tenants/${tenant.id}/api_key`, VersionStage: 'AWSCURRENT' }));
const missFn = () => cold.forCall(call()).get('api_key');
const hitFn = () => warm.forCall(call()).get('api_key');
// Interleaved rounds (raw, miss, hit), median of each: the machine is shared and noisy.
const rounds: { raw: number; miss: number; hit: number }[] = [];
const per = Math.max(20, Math.floor(N / 10));
for (let r = 0; r < 7; r++) {
  rounds.push({
    raw: await time(`raw SDK GetSecretValue (round ${r + 1})`, rawFn, per, false),
    miss: await time('miss', missFn, per, false),
    hit: await time('hit', hitFn, per * 10, false),
  });
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const raw = median(rounds.map((x) => x.raw));
const miss = median(rounds.map((x) => x.miss));
const hit = median(rounds.map((x) => x.hit));
console.log(
  `raw SDK GetSecretValue                    ${raw.toFixed(1).padStart(9)} µs/op (median of 7 rounds x ${per})`,
);
console.log(`ctx.secrets.get, cache off (a fetch)      ${miss.toFixed(1).padStart(9)} µs/op`);
console.log(`ctx.secrets.get, cache hit                ${hit.toFixed(1).padStart(9)} µs/op (rounds x ${per * 10})`);
console.log(`miss / raw = ${(miss / raw).toFixed(2)}x   raw / hit = ${(raw / hit).toFixed(0)}x`);
client.destroy();
await double?.stop();
