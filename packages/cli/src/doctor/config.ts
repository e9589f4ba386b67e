import { z } from 'zod';

/** The `doctor` section (optional): what `tenantscope doctor` checks beyond the stores in `dsar`. */
export const doctorSectionSchema = z.strictObject({
  /**
   * The role the application connects as: the Postgres checks run as this role (a role the
   * application uses must not own a tenant table, bypass RLS or read the binding key). Default:
   * `dsar.postgres` (its url, binding key and pooler).
   */
  postgres: z
    .strictObject({
      url: z.string().min(1).optional(),
      urlEnv: z.string().min(1).optional(),
      /** Environment variable holding the binding key (hex); default `dsar.postgres`'s way of reading it. */
      bindingKeyEnv: z.string().min(1).optional(),
      /** Column that marks a tenant table (every table with it is checked). Default `tenant_id`. */
      tenantColumn: z.string().min(1).default('tenant_id'),
      /** Report readable cross-tenant statistics as warnings, not errors (managed services). Default false. */
      allowSideChannels: z.boolean().default(false),
      /** Accept a role that may create temporary tables. Default false. */
      allowTempTables: z.boolean().default(false),
      /**
       * The tenant databases the placement registry names (the dedicated tier) are checked too, as
       * the same role on the same server (its URL with the database name replaced). `false` skips them.
       * Default: on, with the defaults below; nothing to check while the registry table does not exist.
       */
      tenantDatabases: z
        .union([
          z.literal(false),
          z
            .strictObject({
              /** Schema of the placement registry (`tenant move --registry-schema`). Default `tenantscope_placement`. */
              registrySchema: z
                .string()
                .regex(/^[a-z_][a-z0-9_]{0,62}$/)
                .default('tenantscope_placement'),
              /**
               * A role that reads past RLS (BYPASSRLS, SELECT only), to count rows of other tenants in
               * each tenant database (its URL with the database name replaced). Without it they are not
               * counted (warning TENANT_DB_ROWS_NOT_COUNTED).
               */
              inspectUrl: z.string().min(1).optional(),
              inspectUrlEnv: z.string().min(1).optional(),
              /** Tenant databases checked at once. Default 4. */
              concurrency: z.number().int().min(1).max(32).default(4),
              /** At most this many tenant databases per run. Default 1000. */
              maxDatabases: z.number().int().min(1).max(100_000).default(1000),
              /** A move unchanged for this long (ms) is reported stuck. Default 900000 (15 min). */
              stuckAfterMs: z.number().int().min(0).default(900_000),
            })
            .refine((t) => !(t.inspectUrl && t.inspectUrlEnv), {
              message: 'give at most one of inspectUrl, inspectUrlEnv',
            }),
        ])
        .optional(),
    })
    .refine((p) => !(p.url && p.urlEnv), { message: 'give at most one of url, urlEnv' })
    .optional(),
  /** At most this many S3 keys and secret names are read per run. Default 10000. */
  scanLimit: z.number().int().min(1).max(1_000_000).default(10_000),
});

export type DoctorConfig = z.infer<typeof doctorSectionSchema>;
