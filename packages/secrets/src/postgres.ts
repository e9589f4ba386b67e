/**
 * PostgreSQL as a secrets provider, for self-hosted deployments: envelope encryption with
 * AES-256-GCM. Each tenant has a data key (random, 256 bits) stored only wrapped by a master key
 * the app supplies; each secret version is encrypted with the tenant's data key. Both tables are
 * tenant tables of `@tenantscope/postgres` (RLS forced, `tenantscope.current_tenant_id()`), and
 * every statement runs through the scoped pool bound to the verified tenant.
 *
 * Ciphertexts are bound to where they belong by the GCM additional data: a value to
 * (tenant, identifier, version), a wrapped data key to (tenant, key version). A row copied to
 * another tenant or another name does not decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { isTenantScopeError, type Tenant, TenantScopeError } from '@tenantscope/core';
import {
  type Queryable,
  quoteIdent,
  type ScopedPool,
  type ScopedTransaction,
  tenantTableSql,
} from '@tenantscope/postgres';
import { secretsError } from './errors.ts';
import type { SecretsProvider, SecretValue, VersionSelector } from './provider.ts';

/** A key that wraps and unwraps tenants' data keys. Back it with a KMS in production. */
export interface MasterKey {
  /** Stable id, stored next to each data key it wrapped (so the right key unwraps it). */
  readonly id: string;
  /** Encrypts a 32-byte data key; `aad` must be authenticated (binds the key to its tenant). */
  wrap(dataKey: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** Decrypts what `wrap` produced with the same `aad`; throws on any mismatch. */
  unwrap(wrapped: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * A master key held by the app (32 bytes; hex, base64 or bytes), wrapping with AES-256-GCM.
 * Load it from your secret store or environment; never from the database it protects.
 */
export function localMasterKey(id: string, key: Uint8Array | string): MasterKey {
  if (typeof id !== 'string' || !ID.test(id)) throw new TenantScopeError('INVALID_CONFIG', 'invalid master key id');
  const bytes =
    typeof key === 'string'
      ? /^[0-9a-fA-F]{64}$/.test(key)
        ? Buffer.from(key, 'hex')
        : Buffer.from(key, 'base64')
      : Buffer.from(key);
  if (bytes.length !== 32) throw new TenantScopeError('INVALID_CONFIG', 'a master key must be 32 bytes (AES-256)');
  return {
    id,
    async wrap(dataKey, aad) {
      return seal(bytes, Buffer.from(dataKey), Buffer.from(aad));
    },
    async unwrap(wrapped, aad) {
      return open(bytes, Buffer.from(wrapped), Buffer.from(aad));
    },
  };
}

/** iv(12) || ciphertext || tag(16) */
function seal(key: Buffer, plain: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]);
}

function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < 28) throw new Error('sealed value too short');
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
}

const valueAad = (tenant: string, id: string, version: string) =>
  Buffer.from(`tenantscope-secrets/v1\u0000${tenant}\u0000${id}\u0000${version}`);
const keyAad = (tenant: string, keyVersion: number) =>
  Buffer.from(`tenantscope-secrets-dek/v1\u0000${tenant}\u0000${keyVersion}`);

export interface PostgresSecretsSqlOptions {
  /** Table for secret versions. Default `tenantscope_secrets`; the data keys go in `<table>_keys`. */
  table?: string;
  /** The application role (gets SELECT, INSERT, UPDATE, DELETE under RLS). */
  grantTo?: string | string[];
}

/**
 * Idempotent DDL for the two tables, each made a tenant table (RLS forced, policy on
 * `tenantscope.current_tenant_id()`) with `tenantTableSql`. Run it as the owner, after
 * `installTenantScope`.
 */
export function postgresSecretsSql(options: PostgresSecretsSqlOptions = {}): string {
  const table = options.table ?? 'tenantscope_secrets';
  const t = quoteIdent(table, 'table');
  const k = quoteIdent(`${table}_keys`, 'table');
  const cur = quoteIdent(`${table.replace('.', '_')}_current`.slice(0, 63), 'index');
  return `
CREATE TABLE IF NOT EXISTS ${k} (
  tenant_id text NOT NULL,
  key_version integer NOT NULL CHECK (key_version > 0),
  wrapped_key bytea NOT NULL,
  master_key_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, key_version)
);
CREATE TABLE IF NOT EXISTS ${t} (
  tenant_id text NOT NULL,
  name text NOT NULL,
  version_id uuid NOT NULL,
  is_current boolean NOT NULL,
  key_version integer NOT NULL,
  sealed bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, name, version_id),
  FOREIGN KEY (tenant_id, key_version) REFERENCES ${k} (tenant_id, key_version)
);
CREATE UNIQUE INDEX IF NOT EXISTS ${cur} ON ${t} (tenant_id, name) WHERE is_current;
${tenantTableSql({ table: `${table}_keys`, grantTo: options.grantTo })}
${tenantTableSql({ table, indexColumns: ['name'], grantTo: options.grantTo })}
`;
}

/** Runs {@link postgresSecretsSql} through `owner` (a pool or client of the owning role). */
export async function installPostgresSecrets(owner: Queryable, options: PostgresSecretsSqlOptions = {}): Promise<void> {
  await owner.query(postgresSecretsSql(options));
}

export interface PostgresSecretsOptions {
  /** The scoped pool from `@tenantscope/postgres`; every statement runs bound to the tenant. */
  db: ScopedPool;
  /**
   * Master keys. The first wraps new data keys; the others only unwrap (keep an old key here
   * until `rewrapDataKeys` has moved every tenant to the new one).
   */
  masterKeys: MasterKey | readonly MasterKey[];
  /** Table name, as given to `postgresSecretsSql`. Default `tenantscope_secrets`. */
  table?: string;
  /** Old (non-current) versions kept per secret. Default 10. */
  keepVersions?: number;
}

interface Row {
  tenant_id: string;
  version_id: string;
  sealed: Buffer;
  key_version: number;
  wrapped_key: Buffer;
  master_key_id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The Postgres secrets provider. */
export class PostgresSecretsProvider implements SecretsProvider {
  readonly kind = 'postgres';
  readonly #db: ScopedPool;
  readonly #keys: readonly MasterKey[];
  readonly #secretsTable: string;
  readonly #keysTable: string;
  readonly #keep: number;

  constructor(options: PostgresSecretsOptions) {
    if (!options?.db || typeof options.db.forTenant !== 'function') {
      throw new TenantScopeError('INVALID_CONFIG', 'postgresSecrets needs db: a scopedPool from @tenantscope/postgres');
    }
    const keys = Array.isArray(options.masterKeys) ? options.masterKeys : [options.masterKeys as MasterKey];
    if (keys.length === 0 || !keys.every((k) => k && typeof k.wrap === 'function' && ID.test(k.id))) {
      throw new TenantScopeError('INVALID_CONFIG', 'postgresSecrets needs at least one master key');
    }
    if (new Set(keys.map((k) => k.id)).size !== keys.length) {
      throw new TenantScopeError('INVALID_CONFIG', 'master key ids must be unique');
    }
    const keep = options.keepVersions ?? 10;
    if (!Number.isInteger(keep) || keep < 0 || keep > 1000) {
      throw new TenantScopeError('INVALID_CONFIG', 'keepVersions must be 0-1000');
    }
    const table = options.table ?? 'tenantscope_secrets';
    this.#db = options.db;
    this.#keys = keys;
    this.#secretsTable = quoteIdent(table, 'table');
    this.#keysTable = quoteIdent(`${table}_keys`, 'table');
    this.#keep = keep;
  }

  async get(req: { tenant: Tenant; id: string; version?: VersionSelector }): Promise<SecretValue> {
    const v = req.version ?? {};
    const params: unknown[] = [req.tenant.id, req.id];
    let where = 's.is_current';
    let order = '';
    if (v.versionId !== undefined) {
      if (!UUID.test(v.versionId)) throw this.#notFound(req.id);
      params.push(v.versionId);
      where = 's.version_id = $3::uuid';
    } else if (v.versionStage === 'AWSPREVIOUS') {
      where = 'NOT s.is_current';
      order = 'ORDER BY s.created_at DESC LIMIT 1';
    } else if (v.versionStage !== undefined && v.versionStage !== 'AWSCURRENT') {
      throw this.#notFound(req.id);
    }
    const rows = await this.#run(req.id, () =>
      this.#db.forTenant(req.tenant).query<Row>(
        `SELECT s.tenant_id, s.version_id::text AS version_id, s.sealed, s.key_version, k.wrapped_key, k.master_key_id
           FROM ${this.#secretsTable} s JOIN ${this.#keysTable} k ON k.tenant_id = s.tenant_id AND k.key_version = s.key_version
          WHERE s.tenant_id = $1 AND s.name = $2 AND ${where} ${order}`,
        params,
      ),
    );
    const row = rows.rows[0];
    if (!row) throw this.#notFound(req.id);
    return { value: await this.#decrypt(req.tenant, req.id, row), versionId: row.version_id };
  }

  async getMany(req: { tenant: Tenant; ids: readonly string[] }): Promise<Map<string, SecretValue>> {
    const ids = [...new Set(req.ids)];
    const res = await this.#run('batch', () =>
      this.#db.forTenant(req.tenant).query<Row & { name: string }>(
        `SELECT s.tenant_id, s.name, s.version_id::text AS version_id, s.sealed, s.key_version, k.wrapped_key, k.master_key_id
           FROM ${this.#secretsTable} s JOIN ${this.#keysTable} k ON k.tenant_id = s.tenant_id AND k.key_version = s.key_version
          WHERE s.tenant_id = $1 AND s.name = ANY($2::text[]) AND s.is_current`,
        [req.tenant.id, ids],
      ),
    );
    const out = new Map<string, SecretValue>();
    for (const row of res.rows) {
      out.set(row.name, { value: await this.#decrypt(req.tenant, row.name, row), versionId: row.version_id });
    }
    const missing = ids.find((id) => !out.has(id));
    if (missing !== undefined) throw this.#notFound(missing);
    return out;
  }

  async list(req: { tenant: Tenant; prefix: string }): Promise<string[]> {
    const res = await this.#run('listing', () =>
      this.#db
        .forTenant(req.tenant)
        .query<{ name: string }>(
          `SELECT DISTINCT name FROM ${this.#secretsTable} WHERE tenant_id = $1 AND starts_with(name, $2) ORDER BY name`,
          [req.tenant.id, req.prefix],
        ),
    );
    return res.rows.map((r) => r.name);
  }

  async put(req: { tenant: Tenant; id: string; value: string }): Promise<{ versionId?: string }> {
    const tenantId = req.tenant.id;
    const versionId = randomUUID();
    await this.#run(req.id, () =>
      this.#db.forTenant(req.tenant).transaction(async (tx) => {
        const key = await this.#currentDataKey(tx, req.tenant);
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`secret|${tenantId}|${req.id}`]);
        const sealed = seal(key.key, Buffer.from(req.value, 'utf8'), valueAad(tenantId, req.id, versionId));
        await tx.query(
          `UPDATE ${this.#secretsTable} SET is_current = false WHERE tenant_id = $1 AND name = $2 AND is_current`,
          [tenantId, req.id],
        );
        await tx.query(
          `INSERT INTO ${this.#secretsTable} (name, version_id, is_current, key_version, sealed) VALUES ($1, $2::uuid, true, $3, $4)`,
          [req.id, versionId, key.version, sealed],
        );
        await tx.query(
          `DELETE FROM ${this.#secretsTable} WHERE tenant_id = $1 AND name = $2 AND NOT is_current AND version_id NOT IN (
             SELECT version_id FROM ${this.#secretsTable} WHERE tenant_id = $1 AND name = $2 AND NOT is_current
              ORDER BY created_at DESC LIMIT $3)`,
          [tenantId, req.id, this.#keep],
        );
      }),
    );
    return { versionId };
  }

  async delete(req: { tenant: Tenant; id: string }): Promise<boolean> {
    const res = await this.#run(req.id, () =>
      this.#db
        .forTenant(req.tenant)
        .query(`DELETE FROM ${this.#secretsTable} WHERE tenant_id = $1 AND name = $2`, [req.tenant.id, req.id]),
    );
    return (res.rowCount ?? 0) > 0;
  }

  /** After a DSAR erase: drops the tenant's data keys too (nothing it stored can be decrypted again). */
  async eraseTenant(req: { tenant: Tenant }): Promise<void> {
    await this.#run('erase', () =>
      this.#db.forTenant(req.tenant).transaction(async (tx) => {
        await tx.query(`DELETE FROM ${this.#secretsTable} WHERE tenant_id = $1`, [req.tenant.id]);
        await tx.query(`DELETE FROM ${this.#keysTable} WHERE tenant_id = $1`, [req.tenant.id]);
      }),
    );
  }

  /**
   * Data key rotation for one tenant: a new data key, every stored version re-encrypted with it
   * in one transaction, the old keys deleted. Returns the new key version and how many versions
   * were re-encrypted.
   */
  async rotateDataKey(tenant: Tenant): Promise<{ keyVersion: number; reencrypted: number }> {
    return this.#run('rotation', () =>
      this.#db.forTenant(tenant).transaction(async (tx) => {
        await this.#lockKeys(tx, tenant);
        const keys = await tx.query<{ key_version: number; wrapped_key: Buffer; master_key_id: string }>(
          `SELECT key_version, wrapped_key, master_key_id FROM ${this.#keysTable} WHERE tenant_id = $1 ORDER BY key_version`,
          [tenant.id],
        );
        const plain = new Map<number, Buffer>();
        for (const k of keys.rows) plain.set(k.key_version, await this.#unwrap(tenant, k));
        const next = (keys.rows.at(-1)?.key_version ?? 0) + 1;
        const dek = randomBytes(32);
        await tx.query(`INSERT INTO ${this.#keysTable} (key_version, wrapped_key, master_key_id) VALUES ($1, $2, $3)`, [
          next,
          Buffer.from(await this.#current().wrap(dek, keyAad(tenant.id, next))),
          this.#current().id,
        ]);
        const rows = await tx.query<{ name: string; version_id: string; key_version: number; sealed: Buffer }>(
          `SELECT name, version_id::text AS version_id, key_version, sealed FROM ${this.#secretsTable} WHERE tenant_id = $1 FOR UPDATE`,
          [tenant.id],
        );
        for (const r of rows.rows) {
          const old = plain.get(r.key_version);
          if (!old) throw secretsError('SECRET_BACKEND_FAILED', 'a stored secret refers to a missing data key');
          const aad = valueAad(tenant.id, r.name, r.version_id);
          const value = this.#openValue(old, r.sealed, aad);
          await tx.query(
            `UPDATE ${this.#secretsTable} SET sealed = $1, key_version = $2 WHERE tenant_id = $3 AND name = $4 AND version_id = $5::uuid`,
            [seal(dek, value, aad), next, tenant.id, r.name, r.version_id],
          );
        }
        await tx.query(`DELETE FROM ${this.#keysTable} WHERE tenant_id = $1 AND key_version <> $2`, [tenant.id, next]);
        return { keyVersion: next, reencrypted: rows.rows.length };
      }),
    );
  }

  /**
   * Master key rotation for one tenant: every data key not wrapped by the current master key is
   * unwrapped (with the old key, which must still be in `masterKeys`) and wrapped again. Secret
   * values are untouched. Run it for every tenant, then drop the old master key.
   */
  async rewrapDataKeys(tenant: Tenant): Promise<{ rewrapped: number }> {
    return this.#run('rewrap', () =>
      this.#db.forTenant(tenant).transaction(async (tx) => {
        await this.#lockKeys(tx, tenant);
        const current = this.#current();
        const keys = await tx.query<{ key_version: number; wrapped_key: Buffer; master_key_id: string }>(
          `SELECT key_version, wrapped_key, master_key_id FROM ${this.#keysTable} WHERE tenant_id = $1 AND master_key_id <> $2`,
          [tenant.id, current.id],
        );
        for (const k of keys.rows) {
          const dek = await this.#unwrap(tenant, k);
          await tx.query(
            `UPDATE ${this.#keysTable} SET wrapped_key = $1, master_key_id = $2 WHERE tenant_id = $3 AND key_version = $4`,
            [
              Buffer.from(await current.wrap(dek, keyAad(tenant.id, k.key_version))),
              current.id,
              tenant.id,
              k.key_version,
            ],
          );
        }
        return { rewrapped: keys.rows.length };
      }),
    );
  }

  // --- internals ------------------------------------------------------------------------------

  #current(): MasterKey {
    return this.#keys[0] as MasterKey;
  }

  async #lockKeys(tx: ScopedTransaction, tenant: Tenant): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`dek|${tenant.id}`]);
  }

  async #currentDataKey(tx: ScopedTransaction, tenant: Tenant): Promise<{ version: number; key: Buffer }> {
    await this.#lockKeys(tx, tenant);
    const found = await tx.query<{ key_version: number; wrapped_key: Buffer; master_key_id: string }>(
      `SELECT key_version, wrapped_key, master_key_id FROM ${this.#keysTable} WHERE tenant_id = $1 ORDER BY key_version DESC LIMIT 1`,
      [tenant.id],
    );
    const row = found.rows[0];
    if (row) return { version: row.key_version, key: await this.#unwrap(tenant, row) };
    const dek = randomBytes(32);
    await tx.query(`INSERT INTO ${this.#keysTable} (key_version, wrapped_key, master_key_id) VALUES (1, $1, $2)`, [
      Buffer.from(await this.#current().wrap(dek, keyAad(tenant.id, 1))),
      this.#current().id,
    ]);
    return { version: 1, key: dek };
  }

  async #unwrap(
    tenant: Tenant,
    row: { key_version: number; wrapped_key: Buffer; master_key_id: string },
  ): Promise<Buffer> {
    const mk = this.#keys.find((k) => k.id === row.master_key_id);
    if (!mk) {
      throw secretsError(
        'SECRET_BACKEND_FAILED',
        'the data key is wrapped by a master key this provider does not have',
        {
          details: { masterKeyId: row.master_key_id },
        },
      );
    }
    try {
      const dek = Buffer.from(await mk.unwrap(row.wrapped_key, keyAad(tenant.id, row.key_version)));
      if (dek.length !== 32) throw new Error('data key has the wrong length');
      return dek;
    } catch (cause) {
      throw secretsError('SECRET_BACKEND_FAILED', 'the data key could not be unwrapped', { cause });
    }
  }

  #openValue(dek: Buffer, sealed: Buffer, aad: Buffer): Buffer {
    try {
      return open(dek, sealed, aad);
    } catch (cause) {
      throw secretsError('SECRET_BACKEND_FAILED', 'a stored secret failed authentication and was not decrypted', {
        cause,
      });
    }
  }

  async #decrypt(tenant: Tenant, id: string, row: Row): Promise<string> {
    if (row.tenant_id !== tenant.id) {
      // RLS and the explicit filter both failed: never decrypt another tenant's row.
      throw secretsError('SECRET_BACKEND_FAILED', 'the database returned a row of another scope');
    }
    const dek = await this.#unwrap(tenant, row);
    return this.#openValue(dek, row.sealed, valueAad(tenant.id, id, row.version_id)).toString('utf8');
  }

  #notFound(id: string): TenantScopeError {
    return secretsError('SECRET_NOT_FOUND', `secret "${id.slice(id.lastIndexOf('/') + 1)}" was not found`);
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isTenantScopeError(err) && err.code.startsWith('SECRET_')) throw err;
      if (isTenantScopeError(err) && err.code === 'NOT_A_TENANT') throw err;
      throw secretsError(
        'SECRET_BACKEND_FAILED',
        `secret store operation failed (${what === 'batch' || what === 'listing' || what === 'erase' || what === 'rotation' || what === 'rewrap' ? what : `"${what.slice(what.lastIndexOf('/') + 1)}"`})`,
        { cause: err },
      );
    }
  }
}

/** The Postgres provider for `secretsInjector({ provider })`. */
export function postgresSecrets(options: PostgresSecretsOptions): PostgresSecretsProvider {
  return new PostgresSecretsProvider(options);
}
