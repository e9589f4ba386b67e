import type { Tenant } from '@tenantscope/core';

/** One secret value as a backend returns it. */
export interface SecretValue {
  /** The value. Binary secrets are returned base64-encoded. */
  value: string;
  /** The backend's version id, when it has one. */
  versionId?: string;
}

/** Which version to read. Default: the current one (`AWSCURRENT` on AWS). */
export interface VersionSelector {
  /** A pinned version id. */
  versionId?: string;
  /** A staging label such as `AWSCURRENT` or `AWSPREVIOUS`. */
  versionStage?: string;
}

/**
 * Where secrets are stored (AWS Secrets Manager, PostgreSQL, …). The injector calls it only with
 * a verified tenant and with identifiers its naming produced for that tenant; a backend may scope
 * further (the Postgres backend runs every statement under the tenant's RLS context).
 */
export interface SecretsProvider {
  /** Short name for diagnostics, e.g. `aws-secrets-manager`. */
  readonly kind: string;
  /** Reads one secret. Throws SECRET_NOT_FOUND, SECRET_ACCESS_DENIED, … */
  get(req: { tenant: Tenant; id: string; version?: VersionSelector }): Promise<SecretValue>;
  /** Reads several current values; any failure fails the whole read. */
  getMany(req: { tenant: Tenant; ids: readonly string[] }): Promise<Map<string, SecretValue>>;
  /** Identifiers of the tenant's secrets that start with `prefix`. */
  list(req: { tenant: Tenant; prefix: string }): Promise<string[]>;
  /** Creates the secret or stores a new current version of it. */
  put(req: { tenant: Tenant; id: string; value: string }): Promise<{ versionId?: string }>;
  /** Deletes the secret; resolves false if it did not exist. */
  delete(req: { tenant: Tenant; id: string }): Promise<boolean>;
  /** Optional: called after a DSAR erase deleted every secret of the tenant (e.g. to drop its keys). */
  eraseTenant?(req: { tenant: Tenant }): Promise<void>;
}
