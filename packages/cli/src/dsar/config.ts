import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { cliError } from '../errors.ts';

const tenantId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a tenant id: lowercase letters, digits, _ and -');
const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'an SQL identifier');
const column = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a column name');

/** One tenant table: where a data subject's rows are found, and what erasing them means. */
export const dsarTableSchema = z.strictObject({
  /** The tenant table (optionally schema-qualified), as created with `tenantTableSql`. */
  name: ident,
  /** Column holding the data subject's id. Without it the table holds no personal data of a subject. */
  subjectColumn: column.optional(),
  /**
   * What `subject erase` does to the subject's rows: `"delete"` (default), or
   * `{ "pseudonymise": { "<column>": <replacement> } }` to keep the row (e.g. for accounting).
   */
  erase: z
    .union([
      z.literal('delete'),
      z.strictObject({
        pseudonymise: z
          .record(column, z.union([z.string(), z.number(), z.null()]))
          .refine((r) => Object.keys(r).length > 0, { message: 'name at least one column' }),
      }),
    ])
    .default('delete'),
});

export const dsarSectionSchema = z.strictObject({
  /**
   * The tenants that exist: an array of ids, or the path of a JSON file whose `tenants` object is
   * keyed by tenant id (the example server's `tenants.json`). A tenant outside it is refused.
   */
  tenants: z.union([z.array(tenantId).min(1), z.strictObject({ file: z.string().min(1) })]),
  postgres: z.strictObject({
    /** Connection URL, or the name of an environment variable holding it (`urlEnv`). */
    url: z.string().min(1).optional(),
    urlEnv: z.string().min(1).optional(),
    /**
     * The binding key from `installTenantScope`, hex, in this environment variable. Without it the
     * key is read from `tenantscope.binding_key` (the URL's role must own the tenantscope schema).
     */
    bindingKeyEnv: z.string().min(1).optional(),
    /** The tenant tables, in deletion order (children before parents). */
    tables: z.array(dsarTableSchema).min(1),
    /** Schema of the CLI's deletion-job table. Default `tenantscope_cli`. */
    jobSchema: ident.default('tenantscope_cli'),
    /**
     * Schema of the placement registry (`tenant move`'s `--registry-schema`). Every DSAR command
     * works where the registry places the tenant in each store; no table there, or no row for the
     * tenant: the shared tier. `false`: ignore the registry. Default `tenantscope_placement`.
     */
    registrySchema: z
      .union([z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'an SQL identifier'), z.literal(false)])
      .default('tenantscope_placement'),
    /**
     * What sits between the CLI and PostgreSQL: `none` (default, direct), `session`, or
     * `transaction` (PgBouncer `pool_mode = transaction`). Passed to `scopedPool`; behind a
     * transaction pooler it must be `transaction`, or every call fails with PG_POOLER_MISMATCH.
     */
    pooler: z.enum(['none', 'session', 'transaction']).default('none'),
  }),
  /** The shared bucket tenants' objects live in, each under its own prefix (optional store). */
  s3: z
    .strictObject({
      /** S3 endpoint URL; default the AWS endpoint of `region`. */
      endpoint: z.url().optional(),
      region: z.string().min(1).default('us-east-1'),
      bucket: z.string().min(3).max(63),
      /** The tenant's prefix, with `{tenant}` for the id; must end in `/`. Default `tenants/{tenant}/`. */
      prefix: z
        .string()
        .regex(/^[^{}]*\{tenant\}[^{}]*\/$/, 'contains {tenant} once and ends in /')
        .default('tenants/{tenant}/'),
      /** Environment variables holding the access key; default the AWS SDK's own credential chain. */
      accessKeyIdEnv: z.string().min(1).optional(),
      secretAccessKeyEnv: z.string().min(1).optional(),
      /** Path-style addressing (most S3-compatible servers). Default true when `endpoint` is set. */
      forcePathStyle: z.boolean().optional(),
      /**
       * Objects fetched at once by `tenant export` and `subject export` (and HEADs when subjects are
       * found by `metadata`), 1–64. Each body streams to its own file, so memory does not grow with
       * object size. Default 16.
       */
      concurrency: z.number().int().min(1).max(64).optional(),
      /**
       * Per-tenant users' principal ARN, with `{tenant}` for the id (e.g. `arn:aws:iam:::user/{tenant}`).
       * When set, `doctor` compares the live bucket policy with the one tenantscope generates for
       * every tenant. Without it the policy is not compared.
       */
      policyPrincipal: z
        .string()
        .regex(/\{tenant\}/, 'contains {tenant}')
        .optional(),
      /**
       * Where a data subject's objects are (for `subject export|erase`): `{ keyPattern }`, a folder
       * under the tenant's prefix ending in `{subject}/` (e.g. `subjects/{subject}/`), or
       * `{ metadata }`, a user-metadata field holding the subject id (every object is read).
       */
      subject: z
        .union([
          z.strictObject({
            keyPattern: z.string().regex(/^[^{}]*\{subject\}\/$/, 'ends in {subject}/ and contains it once'),
          }),
          z.strictObject({ metadata: z.string().regex(/^[a-z0-9-]{1,64}$/, 'a lowercase metadata key') }),
        ])
        .optional(),
    })
    .optional(),
  /** The shared Qdrant collection (optional store). */
  qdrant: z
    .strictObject({
      url: z.url(),
      /** Environment variable holding the API key, if the server needs one. */
      apiKeyEnv: z.string().min(1).optional(),
      collection: z.string().min(1).max(255),
      /** Payload field holding the tenant id. Default `tenant_id`. */
      tenantField: z.string().min(1).default('tenant_id'),
      /** Export the vectors too (larger files). Default false: payloads and ids only. */
      withVectors: z.boolean().default(false),
      /** Payload key holding the data subject's id (for `subject export|erase`; those points are deleted). */
      subjectKey: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'a top-level payload key')
        .optional(),
    })
    .optional(),
  /** The secrets provider (optional store): only secret NAMES are exported, never values. */
  secrets: z
    .strictObject({
      provider: z.literal('aws-secrets-manager'),
      endpoint: z.url().optional(),
      region: z.string().min(1).default('us-east-1'),
      accessKeyIdEnv: z.string().min(1).optional(),
      secretAccessKeyEnv: z.string().min(1).optional(),
      /** The tenant's name prefix, with `{tenant}` for the id. Default `tenants/{tenant}/`. */
      prefix: z
        .string()
        .regex(/^[^{}]*\{tenant\}[^{}]*\/$/, 'contains {tenant} once and ends in /')
        .default('tenants/{tenant}/'),
      /**
       * A data subject's secrets (for `subject export|erase`): names (tenant-relative) with
       * `{subject}`, matched exactly, e.g. `["oauth-{subject}"]`. Names only are exported.
       */
      subjectNames: z
        .array(z.string().regex(/^[a-z0-9_-]*\{subject\}[a-z0-9_-]*$/, 'a secret name with {subject} once'))
        .min(1)
        .optional(),
    })
    .optional(),
  /**
   * The audit log the CLI writes to (DSAR events, deletion certificates), verifies and exports:
   * `{ jsonlDir, anchorsDir? }` or `{ postgres: { url | urlEnv, schema?, writerRole?, auditorRole? } }`.
   */
  audit: z.union([
    z.strictObject({
      /** Hash-chained JSONL audit directory (`ChainedJsonlAuditSink`). */
      jsonlDir: z.string().min(1),
      /** Directory of the anchor store, for verification. Default: no anchors. */
      anchorsDir: z.string().min(1).optional(),
    }),
    z.strictObject({
      /** The Postgres audit log (`@tenantscope/audit/postgres`, set up with `migrateAuditSchema`). */
      postgres: z
        .strictObject({
          /** Connection URL of the audit database, or the env var holding it (`urlEnv`). */
          url: z.string().min(1).optional(),
          urlEnv: z.string().min(1).optional(),
          /** Schema of the audit tables. Default `tenantscope_audit`. */
          schema: column.default('tenantscope_audit'),
          /**
           * The writer and auditor roles, when the URL logs in as another role (e.g. behind a
           * pooler): each write or read then runs in a transaction that starts with SET LOCAL ROLE.
           */
          writerRole: column.optional(),
          auditorRole: column.optional(),
        })
        .refine((p) => !p.url !== !p.urlEnv, { message: 'give exactly one of url, urlEnv' }),
    }),
  ]),
  /** Ed25519 private key (PEM PKCS#8 or a JWK JSON file) that signs export manifests. */
  signingKey: z.string().min(1),
  /** Recorded as the subject of the audit events. Default `tenantscope-cli`. */
  actor: z.string().min(1).max(256).default('tenantscope-cli'),
  /** Environment variable holding the key (any string of 32+ characters) for hashing subject ids in the audit log. */
  subjectHashKeyEnv: z.string().min(1).default('TENANTSCOPE_SUBJECT_HASH_KEY'),
});

export type DsarConfig = z.infer<typeof dsarSectionSchema>;
export type DsarTable = z.infer<typeof dsarTableSchema>;

/** The config's `dsar` section, or CLI_CONFIG_INVALID naming it. */
export function dsarSection(config: { dsar?: DsarConfig }, source: string): DsarConfig {
  if (!config.dsar)
    throw cliError('CLI_CONFIG_INVALID', `${source}: dsar: missing (the stores to export from and erase)`);
  const pg = config.dsar.postgres;
  if (!pg.url === !pg.urlEnv) {
    throw cliError('CLI_CONFIG_INVALID', `${source}: dsar.postgres: give exactly one of url, urlEnv`);
  }
  return config.dsar;
}

/** The Postgres URL, or CLI_CONFIG_INVALID naming the field. */
export function postgresUrl(cfg: DsarConfig): string {
  const url = cfg.postgres.url ?? process.env[cfg.postgres.urlEnv as string];
  if (!url) throw cliError('CLI_CONFIG_INVALID', `dsar.postgres.urlEnv: ${cfg.postgres.urlEnv} is not set`);
  return url;
}

/** Every tenant id the config lists (`base`: the config file's folder, for `tenants.file`). */
export async function tenantIds(cfg: DsarConfig, base: string): Promise<string[]> {
  let ids: string[];
  if (Array.isArray(cfg.tenants)) ids = cfg.tenants;
  else {
    const file = resolve(base, cfg.tenants.file);
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { tenants?: Record<string, unknown> };
      ids = Object.keys(parsed.tenants ?? {});
    } catch (cause) {
      throw cliError('CLI_CONFIG_INVALID', `dsar.tenants.file: ${cfg.tenants.file} cannot be read`, { cause });
    }
  }
  return ids;
}

/** Refuses (CLI_UNKNOWN_TENANT, nothing touched) a tenant the config does not list. */
export async function knownTenant(cfg: DsarConfig, tenant: string, base: string): Promise<string> {
  if (!(await tenantIds(cfg, base)).includes(tenant)) {
    throw cliError('CLI_UNKNOWN_TENANT', `unknown tenant ${JSON.stringify(tenant.slice(0, 64))} (not in dsar.tenants)`);
  }
  return tenant;
}
