import {
  type ApiKeyAttemptLimiter,
  type ApiKeyHashAlgorithm,
  type ApiKeyRecord,
  type ApiKeyStore,
  TenantScopeError,
} from '@tenantscope/core';
import type { Pool } from 'pg';

/**
 * API keys (core's `ApiKeyStore`) in PostgreSQL, so every replica and the `tenantscope keys`
 * command see the same keys. Hashes only, never a key. Every call is one statement with no
 * session state and no named prepared statement, so it works through PgBouncer in transaction mode.
 */
export interface PostgresApiKeyStoreOptions {
  /** Schema of the `api_keys` table. Default `tenantscope_state` (beside the replica state). */
  schema?: string;
  /** A replica writes last-used only when the stored value is older than this, in ms. Default 60,000. */
  lastUsedWriteMs?: number;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

function schemaOf(options: PostgresApiKeyStoreOptions): string {
  const s = options.schema ?? 'tenantscope_state';
  if (!SCHEMA.test(s)) throw new TenantScopeError('INVALID_CONFIG', 'schema must be a lowercase identifier');
  return `"${s}"`;
}

/** DDL of the key table. Idempotent. The app role needs SELECT and UPDATE (last_used_at) on it. */
export function apiKeyStoreSql(options: PostgresApiKeyStoreOptions = {}): string {
  const s = schemaOf(options);
  return `
create schema if not exists ${s};
create table if not exists ${s}.api_keys (
  id text primary key check (id ~ '^[A-Za-z0-9_-]{12}$'),
  tenant_id text not null check (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  hash text not null check (length(hash) = 43),
  hash_algorithm text not null check (hash_algorithm in ('sha256', 'hmac-sha256')),
  tools text[] check (cardinality(tools) <= 1024),
  label text check (length(label) <= 200),
  created_at timestamptz not null,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  failed_attempts integer not null default 0,
  failures_since timestamptz
);
alter table ${s}.api_keys add column if not exists failed_attempts integer not null default 0;
alter table ${s}.api_keys add column if not exists failures_since timestamptz;
create index if not exists api_keys_tenant on ${s}.api_keys (tenant_id, created_at desc);`;
}

interface Row {
  id: string;
  tenant_id: string;
  hash: string;
  hash_algorithm: ApiKeyHashAlgorithm;
  tools: string[] | null;
  label: string | null;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = 'id, tenant_id, hash, hash_algorithm, tools, label, created_at, expires_at, last_used_at, revoked_at';

function toRecord(r: Row): ApiKeyRecord {
  return Object.freeze({
    id: r.id,
    tenantId: r.tenant_id,
    hash: r.hash,
    hashAlgorithm: r.hash_algorithm,
    tools: r.tools ? Object.freeze([...r.tools]) : undefined,
    label: r.label ?? undefined,
    createdAt: r.created_at,
    expiresAt: r.expires_at ?? undefined,
    lastUsedAt: r.last_used_at ?? undefined,
    revokedAt: r.revoked_at ?? undefined,
  });
}

export class PostgresApiKeyStore implements ApiKeyStore {
  readonly #pool: Pool;
  readonly #s: string;
  readonly #writeMs: number;

  constructor(pool: Pool, options: PostgresApiKeyStoreOptions = {}) {
    this.#pool = pool;
    this.#s = schemaOf(options);
    this.#writeMs = options.lastUsedWriteMs ?? 60_000;
    if (!Number.isFinite(this.#writeMs) || this.#writeMs < 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'lastUsedWriteMs must be a non-negative number');
    }
  }

  /**
   * Creates the table (needs a role that may create it). One multi-statement query is one
   * transaction, so the advisory lock serialises replicas starting together (CREATE … IF NOT EXISTS
   * can race) and holds through a transaction pooler too.
   */
  async migrate(): Promise<void> {
    await this.#pool.query(
      `select pg_advisory_xact_lock(hashtext('tenantscope.api-keys'));${apiKeyStoreSql({ schema: this.#s.slice(1, -1) })}`,
    );
  }

  async insert(record: ApiKeyRecord): Promise<boolean> {
    const r = await this.#pool.query(
      `insert into ${this.#s}.api_keys (${COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       on conflict (id) do nothing`,
      [
        record.id,
        record.tenantId,
        record.hash,
        record.hashAlgorithm,
        record.tools ? [...record.tools] : null,
        record.label ?? null,
        record.createdAt,
        record.expiresAt ?? null,
        record.lastUsedAt ?? null,
        record.revokedAt ?? null,
      ],
    );
    return r.rowCount === 1;
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.#pool.query<Row>(`select ${COLUMNS} from ${this.#s}.api_keys where id = $1`, [id]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async list(options: { tenantId?: string; limit?: number } = {}): Promise<ApiKeyRecord[]> {
    const limit = Math.max(1, Math.min(Math.trunc(options.limit ?? 1000), 1000));
    const r = await this.#pool.query<Row>(
      `select ${COLUMNS} from ${this.#s}.api_keys where ($1::text is null or tenant_id = $1)
       order by created_at desc, id limit $2`,
      [options.tenantId ?? null, limit],
    );
    return r.rows.map(toRecord);
  }

  async revoke(id: string, at: Date): Promise<ApiKeyRecord | undefined> {
    const r = await this.#pool.query<Row>(
      `update ${this.#s}.api_keys set revoked_at = coalesce(revoked_at, $2) where id = $1 returning ${COLUMNS}`,
      [id, at],
    );
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async touch(id: string, at: Date): Promise<void> {
    // Throttled in the database too, so replicas together write at most about once per interval.
    await this.#pool.query(
      `update ${this.#s}.api_keys set last_used_at = $2
       where id = $1 and (last_used_at is null or last_used_at < $2::timestamptz - make_interval(secs => $3))`,
      [id, at, this.#writeMs / 1000],
    );
  }
}

/**
 * Failed attempts per key id counted in the key table itself, so the limit holds across replicas
 * behind a round-robin balancer (the memory limiter counts per replica). Bounded by the number of
 * keys: only ids that exist are counted (an unknown id has no secret to guess).
 */
export class PostgresApiKeyAttemptLimiter implements ApiKeyAttemptLimiter {
  readonly #pool: Pool;
  readonly #s: string;
  readonly #max: number;
  readonly #windowSecs: number;

  constructor(pool: Pool, options: { schema?: string; maxFailures?: number; windowMs?: number } = {}) {
    this.#pool = pool;
    this.#s = schemaOf(options);
    this.#max = options.maxFailures ?? 10;
    const windowMs = options.windowMs ?? 60_000;
    if (!Number.isInteger(this.#max) || this.#max <= 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'maxFailures must be a positive integer');
    }
    if (!Number.isFinite(windowMs) || windowMs <= 0)
      throw new TenantScopeError('INVALID_CONFIG', 'windowMs must be positive');
    this.#windowSecs = windowMs / 1000;
  }

  async blocked(id: string): Promise<boolean> {
    const r = await this.#pool.query(
      `select 1 from ${this.#s}.api_keys where id = $1 and failed_attempts >= $2
         and failures_since > clock_timestamp() - make_interval(secs => $3)`,
      [id, this.#max, this.#windowSecs],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async fail(id: string): Promise<void> {
    // A window that ended starts again at 1; one atomic update under the row lock.
    await this.#pool.query(
      `update ${this.#s}.api_keys set
         failed_attempts = case when failures_since > clock_timestamp() - make_interval(secs => $2)
                                then failed_attempts + 1 else 1 end,
         failures_since = case when failures_since > clock_timestamp() - make_interval(secs => $2)
                               then failures_since else clock_timestamp() end
       where id = $1`,
      [id, this.#windowSecs],
    );
  }
}
