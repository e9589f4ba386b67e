/**
 * One check per store. Each reads only (it never changes a bucket, collection, secret or table)
 * and turns what it sees into findings with a stable code and a severity.
 */
import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  GetPublicAccessBlockCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { databaseUrl, pg, scopedPool, type TenantDatabaseReport } from '@tenantscope/postgres';
import { checkBucketPolicy, tenantBucketPolicy } from '@tenantscope/s3';
import { SECRET_NAME_PATTERN } from '@tenantscope/secrets';
import { type DsarConfig, postgresUrl } from '../dsar/config.ts';
import { bindingKeyOf, qdrantStore, s3Store, secretsProvider } from '../dsar/stores.ts';
import { cliError } from '../errors.ts';
import type { DoctorConfig } from './config.ts';

export type Severity = 'error' | 'warning' | 'info';
export type StoreName = 'postgres' | 's3' | 'qdrant' | 'secrets';

export interface Finding {
  store: StoreName;
  severity: Severity;
  /** Stable code, e.g. `S3_ACL_PUBLIC`, `QDRANT_TENANT_INDEX_MISSING`, or the Postgres doctor's own. */
  code: string;
  /** The object concerned (bucket, key, collection, secret, role, table), when there is one. */
  object?: string;
  /** Postgres: the tenant database concerned (dedicated tier), when not the shared one. */
  database?: string;
  message: string;
}

type Add = (severity: Severity, code: string, message: string, object?: string, database?: string) => void;

function collector(store: StoreName): { findings: Finding[]; add: Add } {
  const findings: Finding[] = [];
  return {
    findings,
    add: (severity, code, message, object, database) =>
      findings.push({
        store,
        severity,
        code,
        ...(object === undefined ? {} : { object }),
        ...(database === undefined ? {} : { database }),
        message,
      }),
  };
}

const errText = (err: unknown) => {
  const e = err as { name?: string; code?: string; message?: string };
  return `${e.code ?? e.name ?? 'Error'}: ${String(e.message ?? err).slice(0, 200)}`;
};

/** `tenants/{tenant}/` -> a regex whose group 1 is the tenant id and group 2 the rest. */
export function templateRegex(template: string): RegExp {
  const [before, after] = template.split('{tenant}') as [string, string];
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${esc(before)}([^/]+?)${esc(after)}(.*)$`, 's');
}

/** A URL from `url` or the variable `urlEnv` names (`at`: the config path, for the error); undefined when neither is given. */
function urlFrom(at: string, url?: string, urlEnv?: string): string | undefined {
  if (url) return url;
  if (!urlEnv) return undefined;
  const v = process.env[urlEnv];
  if (!v) throw cliError('CLI_CONFIG_INVALID', `${at}: ${urlEnv} is not set`);
  return v;
}

/**
 * Postgres: the adapter's start-up doctor, run as the application's role, over the shared
 * database and every tenant database the placement registry names.
 */
export async function postgresFindings(cfg: DsarConfig, doc: DoctorConfig): Promise<Finding[]> {
  const { findings, add } = collector('postgres');
  const p = doc.postgres;
  const url = urlFrom('doctor.postgres.urlEnv', p?.url, p?.urlEnv) ?? postgresUrl(cfg);
  const t = p?.tenantDatabases;
  const inspect = t
    ? urlFrom('doctor.postgres.tenantDatabases.inspectUrlEnv', t.inspectUrl, t.inspectUrlEnv)
    : undefined;
  const admin = new pg.Pool({ connectionString: postgresUrl(cfg), max: 1 });
  let pool: ReturnType<typeof scopedPool> | undefined;
  try {
    const key = p?.bindingKeyEnv
      ? await bindingKeyOf(p.bindingKeyEnv, 'doctor.postgres.bindingKeyEnv', admin)
      : await bindingKeyOf(cfg.postgres.bindingKeyEnv, 'dsar.postgres.bindingKeyEnv', admin);
    pool = scopedPool({ connectionString: url, max: 2 }, { bindingKey: key, pooler: cfg.postgres.pooler });
    const report = await pool.doctor({
      tables: cfg.postgres.tables.map((t) => t.name),
      tenantColumn: p?.tenantColumn ?? 'tenant_id',
      allowSideChannels: p?.allowSideChannels ?? false,
      allowTempTables: p?.allowTempTables ?? false,
      ...(t === false
        ? {}
        : {
            tenantDatabases: {
              registry: admin,
              registrySchema: t?.registrySchema ?? 'tenantscope_placement',
              connectionString: (name: string) => databaseUrl(url, name),
              ...(inspect ? { inspectConnectionString: (name: string) => databaseUrl(inspect, name) } : {}),
              concurrency: t?.concurrency ?? 4,
              maxDatabases: t?.maxDatabases ?? 1000,
              stuckAfterMs: t?.stuckAfterMs ?? 900_000,
            },
          }),
    });
    for (const w of report.warnings) add('warning', w.code, w.message, w.object, w.database);
    add('info', 'PG_CHECKED', `role ${report.role}: ${report.tables.length} tenant tables checked`, report.role);
    tenantDatabasesChecked(report.databases, add);
  } catch (err) {
    const e = err as {
      code?: string;
      details?: { problems?: Finding[]; warnings?: Finding[]; databases?: TenantDatabaseReport[] };
    };
    if (e.code === 'CLI_CONFIG_INVALID') throw err;
    if (e.code === 'PG_DOCTOR_FAILED' && e.details?.problems) {
      for (const x of e.details.problems) add('error', x.code, x.message, x.object, x.database);
      for (const x of e.details.warnings ?? []) add('warning', x.code, x.message, x.object, x.database);
      tenantDatabasesChecked(e.details.databases, add);
    } else add('error', 'PG_UNREACHABLE', `cannot check Postgres (${errText(err)})`);
  } finally {
    await Promise.allSettled([pool?.end(), admin.end()]);
  }
  return findings;
}

/** PG_TENANT_DBS_CHECKED (info): how many tenant databases were checked, for how many tenants. */
function tenantDatabasesChecked(databases: TenantDatabaseReport[] | undefined, add: Add): void {
  if (!databases) return;
  const tenants = new Set(databases.flatMap((d) => d.tenants));
  add('info', 'PG_TENANT_DBS_CHECKED', `${databases.length} tenant database(s) of ${tenants.size} tenant(s) checked`);
}

/** S3: versioning, object lock, public access (ACL, policy status, public access block), policy drift, prefix rule. */
export async function s3Findings(cfg: DsarConfig, tenants: string[], doc: DoctorConfig): Promise<Finding[]> {
  const { findings, add } = collector('s3');
  const c = cfg.s3;
  const s3 = s3Store(cfg);
  if (!c || !s3) return findings;
  const raw = s3.unscopedClient;
  const Bucket = c.bucket;
  const name = (err: unknown) => (err as { name?: string }).name ?? '';
  try {
    try {
      const v = await raw.send(new GetBucketVersioningCommand({ Bucket }));
      if (v.Status === 'Enabled' || v.Status === 'Suspended') {
        add(
          'warning',
          v.Status === 'Enabled' ? 'S3_VERSIONING_ENABLED' : 'S3_VERSIONING_SUSPENDED',
          `versioning is ${v.Status.toLowerCase()}: a tenant delete leaves noncurrent versions; erase them with a lifecycle rule`,
          Bucket,
        );
      } else add('info', 'S3_VERSIONING_OFF', 'versioning is off', Bucket);
    } catch (err) {
      add('error', 'S3_UNREACHABLE', `cannot read the bucket (${errText(err)})`, Bucket);
      return findings;
    }

    try {
      const lock = await raw.send(new GetObjectLockConfigurationCommand({ Bucket }));
      const cfgLock = lock.ObjectLockConfiguration;
      if (cfgLock?.ObjectLockEnabled === 'Enabled') {
        if (cfgLock.Rule?.DefaultRetention)
          add(
            'error',
            'S3_OBJECT_LOCK_RETENTION',
            'object lock with a default retention: a tenant delete cannot erase objects inside it',
            Bucket,
          );
        else add('warning', 'S3_OBJECT_LOCK_ENABLED', 'object lock is on: a locked object cannot be erased', Bucket);
      }
    } catch (err) {
      if (name(err) === 'ObjectLockConfigurationNotFoundError')
        add('info', 'S3_OBJECT_LOCK_OFF', 'object lock is off', Bucket);
      else add('warning', 'S3_OBJECT_LOCK_UNKNOWN', `object lock state unreadable (${errText(err)})`, Bucket);
    }

    try {
      const acl = await raw.send(new GetBucketAclCommand({ Bucket }));
      const open = (acl.Grants ?? []).filter((g) =>
        /\/groups\/global\/(AllUsers|AuthenticatedUsers)$/.test(g.Grantee?.URI ?? ''),
      );
      for (const g of open) {
        add(
          'error',
          'S3_ACL_PUBLIC',
          `the bucket ACL grants ${g.Permission} to ${g.Grantee?.URI?.split('/').pop()}`,
          Bucket,
        );
      }
    } catch (err) {
      add('warning', 'S3_ACL_UNKNOWN', `bucket ACL unreadable (${errText(err)})`, Bucket);
    }

    // Read from the policy itself: Ceph 16 answers GetBucketPolicyStatus with IsPublic true for every policy.
    for (const sid of await publicStatements(raw, Bucket)) {
      add('error', 'S3_POLICY_PUBLIC', `policy statement ${sid} allows anyone (Principal "*", no condition)`, Bucket);
    }

    try {
      const pab = (await raw.send(new GetPublicAccessBlockCommand({ Bucket }))).PublicAccessBlockConfiguration ?? {};
      const off = (
        ['BlockPublicAcls', 'IgnorePublicAcls', 'BlockPublicPolicy', 'RestrictPublicBuckets'] as const
      ).filter((k) => pab[k] !== true);
      if (off.length > 0)
        add('warning', 'S3_PUBLIC_ACCESS_NOT_BLOCKED', `public access is possible: ${off.join(', ')} off`, Bucket);
    } catch (err) {
      if (name(err) === 'NoSuchPublicAccessBlockConfiguration')
        add('warning', 'S3_PUBLIC_ACCESS_NOT_BLOCKED', 'public access is possible: no public access block', Bucket);
      else add('info', 'S3_PUBLIC_ACCESS_UNKNOWN', `public access block unreadable (${errText(err)})`, Bucket);
    }

    if (c.policyPrincipal) {
      const expected = tenantBucketPolicy(
        tenants.map((t) => ({
          tenantId: t,
          principal: (c.policyPrincipal as string).replace('{tenant}', t),
          placement: { bucket: Bucket, prefix: c.prefix.replace('{tenant}', t) },
        })),
      );
      for (const f of await checkBucketPolicy(raw, Bucket, expected))
        add('error', f.code, f.message, f.statement ?? Bucket);
    } else {
      add(
        'info',
        'S3_POLICY_NOT_COMPARED',
        'dsar.s3.policyPrincipal is not set: the bucket policy is not compared',
        Bucket,
      );
    }

    await prefixRule(raw, Bucket, c.prefix, tenants, doc.scanLimit, add);
  } finally {
    raw.destroy();
  }
  return findings;
}

/** Sids (or positions) of Allow statements open to anyone: Principal `*` (or AWS `*`) and no Condition. */
async function publicStatements(raw: S3Client, Bucket: string): Promise<string[]> {
  let doc: { Statement?: unknown };
  try {
    doc = JSON.parse((await raw.send(new GetBucketPolicyCommand({ Bucket }))).Policy ?? '{}');
  } catch {
    return []; // no policy, or unreadable: checkBucketPolicy reports it when a policy is expected
  }
  const list = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : [];
  const anyone = (p: unknown): boolean =>
    p === '*' || (typeof p === 'object' && p !== null && [(p as { AWS?: unknown }).AWS].flat().some((a) => a === '*'));
  return list
    .map((st: { Sid?: string; Effect?: string; Principal?: unknown; Condition?: unknown }, i: number) =>
      st.Effect === 'Allow' && anyone(st.Principal) && !st.Condition ? (st.Sid ?? `#${i}`) : undefined,
    )
    .filter((x: string | undefined): x is string => x !== undefined);
}

/** Every key must sit under a listed tenant's prefix. Reads at most `limit` keys. */
async function prefixRule(
  raw: S3Client,
  Bucket: string,
  template: string,
  tenants: string[],
  limit: number,
  add: Add,
): Promise<void> {
  const re = templateRegex(template);
  const known = new Set(tenants);
  const outside: string[] = [];
  const unknown = new Map<string, number>();
  let seen = 0;
  let token: string | undefined;
  do {
    const page = await raw.send(
      new ListObjectsV2Command({ Bucket, ContinuationToken: token, MaxKeys: Math.min(1000, limit - seen) }),
    );
    for (const o of page.Contents ?? []) {
      seen++;
      const key = o.Key ?? '';
      const m = re.exec(key);
      if (!m) outside.push(key);
      else if (!known.has(m[1] as string)) unknown.set(m[1] as string, (unknown.get(m[1] as string) ?? 0) + 1);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token && seen < limit);
  if (outside.length > 0) {
    add(
      'warning',
      'S3_KEY_OUTSIDE_PREFIX',
      `${outside.length} object(s) outside every tenant prefix (${template}); no tenant export or delete reaches them`,
      outside[0],
    );
  }
  for (const [t, n] of unknown) {
    add(
      'warning',
      'S3_UNKNOWN_TENANT_PREFIX',
      `${n} object(s) under the prefix of a tenant not in dsar.tenants`,
      template.replace('{tenant}', t),
    );
  }
  if (token) add('info', 'S3_SCAN_TRUNCATED', `only the first ${seen} keys were checked (doctor.scanLimit)`, Bucket);
  else add('info', 'S3_KEYS_CHECKED', `${seen} keys checked against the prefix rule`, Bucket);
}

/** Qdrant: the tenant index (keyword, is_tenant), points without the tenant field, points of unknown tenants. */
export async function qdrantFindings(cfg: DsarConfig, tenants: string[]): Promise<Finding[]> {
  const { findings, add } = collector('qdrant');
  const q = qdrantStore(cfg);
  const c = cfg.qdrant;
  if (!q || !c) return findings;
  const raw = q.unscopedClient;
  let schema: Record<string, { data_type?: string; params?: { is_tenant?: boolean } }>;
  try {
    schema = ((await raw.getCollection(c.collection)).payload_schema ?? {}) as typeof schema;
  } catch (err) {
    add('error', 'QDRANT_UNREACHABLE', `cannot read the collection (${errText(err)})`, c.collection);
    return findings;
  }
  const index = schema[c.tenantField];
  if (!index) {
    add('error', 'QDRANT_TENANT_INDEX_MISSING', `no payload index on ${c.tenantField}`, c.collection);
  } else if (index.data_type !== 'keyword' || index.params?.is_tenant !== true) {
    add(
      'warning',
      'QDRANT_TENANT_INDEX_NOT_TENANT',
      `the index on ${c.tenantField} is ${index.data_type} without is_tenant: true`,
      c.collection,
    );
  }
  const count = async (filter: Record<string, unknown>) =>
    (await raw.count(c.collection, { filter, exact: true })).count;
  try {
    const missing = await count({ must: [{ is_empty: { key: c.tenantField } }] });
    if (missing > 0) {
      add(
        'error',
        'QDRANT_POINTS_WITHOUT_TENANT',
        `${missing} point(s) have no ${c.tenantField}: no tenant sees, exports or deletes them`,
        c.collection,
      );
    }
    const foreign = await count({
      must_not: [{ is_empty: { key: c.tenantField } }, { key: c.tenantField, match: { any: tenants } }],
    });
    if (foreign > 0) {
      add(
        'warning',
        'QDRANT_UNKNOWN_TENANT',
        `${foreign} point(s) belong to tenants not in dsar.tenants`,
        c.collection,
      );
    }
  } catch (err) {
    add('error', 'QDRANT_UNREACHABLE', `cannot count points (${errText(err)})`, c.collection);
  }
  return findings;
}

/** Secrets: every name under the configured base follows `<prefix(tenant)><name>` for a listed tenant. */
export async function secretsFindings(cfg: DsarConfig, tenants: string[], doc: DoctorConfig): Promise<Finding[]> {
  const { findings, add } = collector('secrets');
  const c = cfg.secrets;
  const provider = secretsProvider(cfg);
  if (!c || !provider) return findings;
  const raw = provider.unscopedClient;
  const base = c.prefix.slice(0, c.prefix.indexOf('{tenant}'));
  const re = templateRegex(c.prefix);
  const known = new Set(tenants);
  let seen = 0;
  let token: string | undefined;
  const bad: string[] = [];
  const unknown = new Map<string, number>();
  try {
    do {
      const page = await raw.send(
        new ListSecretsCommand({
          ...(base ? { Filters: [{ Key: 'name', Values: [base] }] } : {}),
          MaxResults: 100,
          NextToken: token,
        }),
      );
      for (const s of page.SecretList ?? []) {
        const n = s.Name ?? '';
        if (!n.startsWith(base)) continue; // the filter is a case-insensitive prefix match
        seen++;
        const m = re.exec(n);
        if (!m || !SECRET_NAME_PATTERN.test(m[2] as string)) bad.push(n);
        else if (!known.has(m[1] as string)) unknown.set(m[1] as string, (unknown.get(m[1] as string) ?? 0) + 1);
      }
      token = page.NextToken;
    } while (token && seen < doc.scanLimit);
  } catch (err) {
    add('error', 'SECRETS_UNREACHABLE', `cannot list secrets (${errText(err)})`);
    return findings;
  } finally {
    raw.destroy();
  }
  if (bad.length > 0) {
    add(
      'error',
      'SECRETS_NAME_OUTSIDE_CONVENTION',
      `${bad.length} secret(s) under ${base || '(every name)'} do not follow ${c.prefix}<name>: no tenant reads, exports or erases them`,
      bad[0],
    );
  }
  for (const [t, n] of unknown) {
    add(
      'warning',
      'SECRETS_UNKNOWN_TENANT',
      `${n} secret(s) of a tenant not in dsar.tenants`,
      c.prefix.replace('{tenant}', t),
    );
  }
  add('info', token ? 'SECRETS_SCAN_TRUNCATED' : 'SECRETS_CHECKED', `${seen} secret names checked`);
  return findings;
}
