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
    })
    .refine((p) => !(p.url && p.urlEnv), { message: 'give at most one of url, urlEnv' })
    .optional(),
  /** At most this many S3 keys and secret names are read per run. Default 10000. */
  scanLimit: z.number().int().min(1).max(1_000_000).default(10_000),
});

export type DoctorConfig = z.infer<typeof doctorSectionSchema>;
