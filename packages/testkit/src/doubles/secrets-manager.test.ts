/**
 * The Secrets Manager protocol double is strict: what the AWS SDK would never send is refused
 * with an AWS-shaped error. Raw HTTP here; the SDK path is covered by @tenantscope/secrets' suite.
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsManagerProtocolDouble } from './secrets-manager.ts';

const double = new SecretsManagerProtocolDouble({ credentials: [{ accessKeyId: 'AK', secretAccessKey: 'SK' }] });
let endpoint: string;

beforeAll(async () => {
  endpoint = await double.start();
});
afterAll(() => double.stop());

/** A correctly SigV4-signed request (so each test can break exactly one thing). */
function signed(target: string, body: string, over: Record<string, string | null> = {}, secret = 'SK') {
  const host = new URL(endpoint).host;
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': 'application/x-amz-json-1.1',
    host,
    'x-amz-date': amzDate,
    'x-amz-target': target,
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    'POST',
    '/',
    '',
    names.map((h) => `${h}:${headers[h]}\n`).join(''),
    names.join(';'),
    createHash('sha256').update(body).digest('hex'),
  ].join('\n');
  const scope = `${date}/us-east-1/secretsmanager/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let k = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  for (const part of ['us-east-1', 'secretsmanager', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  const sig = createHmac('sha256', k).update(toSign).digest('hex');
  const out: Record<string, string> = {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=AK/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}`,
  };
  for (const [h, v] of Object.entries(over)) {
    if (v === null) delete out[h];
    else out[h] = v;
  }
  delete out.host;
  return out;
}

async function send(headers: Record<string, string>, body: string) {
  const res = await fetch(endpoint, { method: 'POST', headers, body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('SecretsManagerProtocolDouble strictness', () => {
  it('a well-formed signed request works; a missing secret is an AWS-shaped 400', async () => {
    const body = JSON.stringify({ SecretId: 'nope' });
    const r = await send(signed('secretsmanager.GetSecretValue', body), body);
    expect(r.status).toBe(400);
    expect(r.json).toEqual({
      __type: 'ResourceNotFoundException',
      message: "Secrets Manager can't find the specified secret.",
    });
  });

  it('refuses a wrong content-type, an unknown target, a missing or bad signature', async () => {
    const body = JSON.stringify({ SecretId: 'x' });
    const cases: [Record<string, string>, string][] = [
      [signed('secretsmanager.GetSecretValue', body, { 'content-type': 'application/json' }), 'SerializationException'],
      [
        signed('secretsmanager.GetSecretValue', body, { 'x-amz-target': 'secretsmanager.Nope' }),
        'UnknownOperationException',
      ],
      [signed('secretsmanager.GetSecretValue', body, { 'x-amz-target': 'kms.Decrypt' }), 'UnknownOperationException'],
      [signed('secretsmanager.GetSecretValue', body, { authorization: null }), 'MissingAuthenticationTokenException'],
      [signed('secretsmanager.GetSecretValue', body, { authorization: 'Bearer x' }), 'IncompleteSignatureException'],
      [signed('secretsmanager.GetSecretValue', body, {}, 'wrong-secret'), 'InvalidSignatureException'],
      [
        signed('secretsmanager.GetSecretValue', body, { 'x-amz-date': '20000101T000000Z' }),
        'IncompleteSignatureException',
      ],
    ];
    for (const [headers, type] of cases) {
      const r = await send(headers, body);
      expect(r.json.__type, JSON.stringify(headers)).toBe(type);
    }
    // A body changed after signing fails the signature check.
    const tampered = await send(signed('secretsmanager.GetSecretValue', body), JSON.stringify({ SecretId: 'y' }));
    expect(tampered.json.__type).toBe('InvalidSignatureException');
  });

  it('checks JSON shapes: unknown members, wrong types, missing required members, bad combinations', async () => {
    const cases: [string, unknown, string][] = [
      ['GetSecretValue', { SecretId: 'x', Extra: 1 }, 'SerializationException'],
      ['GetSecretValue', { SecretId: 5 }, 'SerializationException'],
      ['GetSecretValue', {}, 'InvalidParameterException'],
      ['GetSecretValue', [], 'SerializationException'],
      ['BatchGetSecretValue', { SecretIdList: ['a'], Filters: [] }, 'InvalidParameterException'],
      [
        'BatchGetSecretValue',
        { SecretIdList: Array.from({ length: 21 }, (_, i) => `s${i}`) },
        'InvalidParameterException',
      ],
      [
        'DeleteSecret',
        { SecretId: 'x', ForceDeleteWithoutRecovery: true, RecoveryWindowInDays: 7 },
        'InvalidParameterException',
      ],
      ['CreateSecret', { Name: 'bad name!', SecretString: 'v' }, 'InvalidParameterException'],
      ['ListSecrets', { MaxResults: 101 }, 'InvalidParameterException'],
    ];
    for (const [op, input, type] of cases) {
      const body = JSON.stringify(input);
      const r = await send(signed(`secretsmanager.${op}`, body), body);
      expect(r.status, `${op} ${body}`).toBe(400);
      expect(r.json.__type, `${op} ${body}`).toBe(type);
    }
    const notJson = '{nope';
    expect((await send(signed('secretsmanager.ListSecrets', notJson), notJson)).json.__type).toBe(
      'SerializationException',
    );
  });

  it('BatchGetSecretValue reports per-secret failures in Errors[] with epoch-second dates on values', async () => {
    const create = JSON.stringify({ Name: 'batch/one', SecretString: 'one-value' });
    await send(signed('secretsmanager.CreateSecret', create), create);
    const body = JSON.stringify({ SecretIdList: ['batch/one', 'batch/missing'] });
    const r = await send(signed('secretsmanager.BatchGetSecretValue', body), body);
    expect(r.status).toBe(200);
    const values = r.json.SecretValues as Record<string, unknown>[];
    expect(values.map((v) => v.SecretString)).toEqual(['one-value']);
    expect(typeof values[0]?.CreatedDate).toBe('number');
    expect(values[0]?.CreatedDate as number).toBeLessThan(Date.now() / 100); // seconds, not ms
    expect(r.json.Errors).toEqual([
      { SecretId: 'batch/missing', ErrorCode: 'ResourceNotFoundException', Message: expect.any(String) },
    ]);
  });
});
