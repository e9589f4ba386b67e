/** The policy generator and the drift comparison (pure: no server). */
import { describe, expect, it } from 'vitest';
import { comparePolicies } from './doctor.ts';
import { FENCE_ACTIONS, fenceStatements, type PolicyDocument, tenantBucketPolicy, tenantPolicy } from './policy.ts';

const acme = { bucket: 'crm-files', prefix: 'tenants/acme/' };

describe('policy generator', () => {
  it("a tenant's policy allows its objects and a list confined to its prefix, nothing else", () => {
    expect(tenantPolicy('acme', acme)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'TenantacmeObjects',
          Effect: 'Allow',
          Action: [
            's3:AbortMultipartUpload',
            's3:DeleteObject',
            's3:GetObject',
            's3:ListMultipartUploadParts',
            's3:PutObject',
          ],
          Resource: ['arn:aws:s3:::crm-files/tenants/acme/*'],
        },
        {
          Sid: 'TenantacmeList',
          Effect: 'Allow',
          Action: ['s3:ListBucket'],
          Resource: ['arn:aws:s3:::crm-files'],
          Condition: { StringLike: { 's3:prefix': ['tenants/acme/*'] } },
        },
      ],
    });
    expect(JSON.stringify(tenantPolicy('acme', acme, { partition: 'aws-cn' }))).toContain('arn:aws-cn:s3:::');
  });

  it('Sids stay [A-Za-z0-9] and distinct for every id (escapes cannot collide)', () => {
    const ids = ['a-b', 'a_b', 'ax002db', 'ax2db', 'x', 'ab'];
    const sids = ids.map((id) => tenantPolicy(id, acme).Statement[0]?.Sid as string);
    for (const sid of sids) expect(sid).toMatch(/^[A-Za-z0-9]+$/);
    expect(new Set(sids).size).toBe(ids.length);
  });

  it('a bucket policy names each principal; grants over two buckets are refused', () => {
    const p = tenantBucketPolicy([
      { tenantId: 'acme', principal: 'arn:aws:iam::1:user/acme', placement: acme },
      {
        tenantId: 'globex',
        principal: 'arn:aws:iam::1:user/globex',
        placement: { ...acme, prefix: 'tenants/globex/' },
      },
    ]);
    expect(p.Statement).toHaveLength(4);
    expect(p.Statement[2]).toMatchObject({ Principal: { AWS: ['arn:aws:iam::1:user/globex'] } });
    expect(() =>
      tenantBucketPolicy([
        { tenantId: 'acme', principal: 'x', placement: acme },
        { tenantId: 'globex', principal: 'y', placement: { bucket: 'other', prefix: 'tenants/globex/' } },
      ]),
    ).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });
});

describe('comparePolicies', () => {
  const expected = tenantPolicy('acme', acme);
  it('equal up to order and single values written without a list', () => {
    const live = structuredClone(expected) as unknown as { Statement: Record<string, unknown>[] };
    live.Statement.reverse();
    (live.Statement[0] as Record<string, unknown>).Resource = 'arn:aws:s3:::crm-files';
    (live.Statement[0] as { Condition: unknown }).Condition = { StringLike: { 's3:prefix': 'tenants/acme/*' } };
    (live.Statement[1] as { Action: string[] }).Action.reverse();
    expect(comparePolicies(live as unknown as PolicyDocument, expected)).toEqual([]);
  });

  it('a widened prefix, an Allow turned Deny, an extra statement and a missing one are each reported', () => {
    const live = structuredClone(expected);
    (live.Statement[1] as { Condition: unknown }).Condition = { StringLike: { 's3:prefix': ['tenants/*'] } };
    live.Statement.push({ Effect: 'Allow', Action: 's3:*', Resource: '*' });
    const codes = comparePolicies(live, expected).map((f) => `${f.code} ${f.statement}`);
    expect(codes).toEqual(['S3_POLICY_STATEMENT_CHANGED TenantacmeList', 'S3_POLICY_STATEMENT_EXTRA #2']);
    const denied = structuredClone(expected);
    (denied.Statement[0] as { Effect: string }).Effect = 'Deny';
    denied.Statement.splice(1, 1);
    expect(comparePolicies(denied, expected).map((f) => f.code)).toEqual([
      'S3_POLICY_STATEMENT_CHANGED',
      'S3_POLICY_STATEMENT_MISSING',
    ]);
  });
});

describe('move fence', () => {
  it("denies every write on the tenant's prefix (the whole bucket when dedicated) to all but the exempt user and to every role session", () => {
    const [users, sessions] = fenceStatements('acme', acme, { exemptUser: 'mover' });
    expect(users).toMatchObject({
      Sid: 'TenantscopeMoveFenceacmeUsers',
      Effect: 'Deny',
      Principal: '*',
      Resource: ['arn:aws:s3:::crm-files/tenants/acme/*'],
      Condition: { StringNotEquals: { 'aws:username': ['mover'] } },
    });
    expect(sessions).toMatchObject({
      Sid: 'TenantscopeMoveFenceacmeSessions',
      Effect: 'Deny',
      Condition: { StringLike: { 'aws:userid': ['*:*'] } },
    });
    expect(users?.Action).toEqual([...FENCE_ACTIONS]);
    expect(FENCE_ACTIONS).not.toContain('s3:GetObject');
    const whole = fenceStatements('acme', acme, { exemptUser: 'mover', wholeBucket: true });
    expect(whole.map((s) => s.Resource)).toEqual([['arn:aws:s3:::crm-files/*'], ['arn:aws:s3:::crm-files/*']]);
    // Sids never collide between tenants; a bad exempt user is a config error.
    expect(fenceStatements('acme-x', acme, { exemptUser: 'm' })[0]?.Sid).not.toBe(users?.Sid);
    for (const bad of ['', 'a b', 'x"y'])
      expect(() => fenceStatements('acme', acme, { exemptUser: bad })).toThrow(/exempt user/);
  });

  it('is not drift for the doctor; an Allow carrying a fence Sid is', () => {
    const expected = tenantPolicy('acme', acme);
    const live = structuredClone(expected) as PolicyDocument;
    live.Statement.push(...fenceStatements('acme', acme, { exemptUser: 'mover' }));
    expect(comparePolicies(live, expected)).toEqual([]);
    live.Statement.push({ Sid: 'TenantscopeMoveFenceevilUsers', Effect: 'Allow', Action: 's3:*', Resource: '*' });
    expect(comparePolicies(live, expected).map((f) => `${f.code} ${f.statement}`)).toEqual([
      'S3_POLICY_STATEMENT_EXTRA TenantscopeMoveFenceevilUsers',
    ]);
  });
});
