/**
 * API keys: a second credential beside JWTs. A key reads `tsk_<tenant>_<secret>`, the secret being
 * 32 random bytes in base64url (43 characters). It is shown once; the store keeps only a hash
 * (SHA-256, or HMAC-SHA-256 under a server-held pepper) beside a public lookup id (the secret's first
 * 12 characters), the tenant, the allowed tools, expiry, creation, last use and revocation.
 *
 * A fast hash is enough here, unlike for passwords: slow KDFs exist to make guessing low-entropy
 * secrets expensive, and this secret is uniformly random. Even knowing the lookup id, 184 bits stay
 * unknown, so inverting a stored hash means ~2^184 hash evaluations. A pepper adds that a leaked
 * table alone cannot even confirm a guessed key.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { errorFactory, isTenantScopeError, TenantScopeError } from './errors.ts';
import { BoundedLru } from './lru.ts';
import type { RevocationStore } from './revocation.ts';
import { DEFAULT_TENANT_ID_PATTERN, mintTenant, type Tenant } from './tenant.ts';
import { TOOL_PATTERN, type TokenVerifier } from './verifier.ts';

/** The codes API-key verification throws (401 unless noted), for core's `errorFactory`. */
export const API_KEY_ERROR_CODES = {
  /** Malformed key, unknown lookup id, or a secret that does not match the stored hash. */
  AUTH_API_KEY_INVALID: 401,
  /** The key was revoked (in the key store or in the RevocationStore). */
  AUTH_API_KEY_REVOKED: 401,
  /** The key is past its expiry. */
  AUTH_API_KEY_EXPIRED: 401,
  /** The tenant in the key's text is not the tenant of its stored record. */
  AUTH_API_KEY_TENANT_MISMATCH: 401,
  /** Too many failed attempts for this lookup id in the window. */
  AUTH_RATE_LIMITED: 429,
  /** A key could not be created: the store already holds its lookup id (retried), or is full. */
  API_KEY_STORE_FAILED: 500,
} as const;

export type ApiKeyErrorCode = keyof typeof API_KEY_ERROR_CODES;

/** `apiKeyError('AUTH_API_KEY_INVALID', …)`: a TenantScopeError with the table's status. */
export const apiKeyError = errorFactory(API_KEY_ERROR_CODES);

/** Every API key starts with this. A bearer token that does not is handed to the JWT verifier. */
export const API_KEY_PREFIX = 'tsk_';
/** Characters of the secret that form the public lookup id. */
export const API_KEY_ID_LENGTH = 12;
/** The issuer recorded on a Tenant authenticated by an API key. */
export const API_KEY_ISSUER = 'tenantscope:api-key';

const KEY_PATTERN = /^tsk_([a-z0-9][a-z0-9_-]{0,62})_([A-Za-z0-9_-]{43})$/;
const ID_PATTERN = /^[A-Za-z0-9_-]{12}$/;
const MAX_TOOLS = 1024;
const MAX_LABEL = 200;
/** A key with no expiry yields a principal valid this long (it is verified again on every request). */
const OPEN_ENDED_PRINCIPAL_MS = 3_600_000;

export type ApiKeyHashAlgorithm = 'sha256' | 'hmac-sha256';

/** What a store keeps about one key. Never the key itself. */
export interface ApiKeyRecord {
  /** Public lookup id: the first 12 characters of the secret. */
  readonly id: string;
  /** The tenant the key authenticates as. The verifier takes the tenant from here, never from the key's text. */
  readonly tenantId: string;
  /** base64url of SHA-256 (or HMAC-SHA-256 under the pepper) of the whole key text. */
  readonly hash: string;
  readonly hashAlgorithm: ApiKeyHashAlgorithm;
  /** Tool names or globs the key may call (as a JWT's `allowed_tools`); undefined = the tenant's whole policy. */
  readonly tools: readonly string[] | undefined;
  /** A note for operators (who it is for). */
  readonly label: string | undefined;
  readonly createdAt: Date;
  readonly expiresAt: Date | undefined;
  /** Last successful use; written at most once per `lastUsedWriteMs`. */
  readonly lastUsedAt: Date | undefined;
  readonly revokedAt: Date | undefined;
}

/** Where keys are kept. `MemoryApiKeyStore` here; `PostgresApiKeyStore` in `@tenantscope/postgres`. */
export interface ApiKeyStore {
  /** Adds a key; resolves false (and changes nothing) when the id is taken. */
  insert(record: ApiKeyRecord): Promise<boolean>;
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** Keys, newest first, of one tenant or of all; at most `limit` (default 1000). */
  list(options?: { tenantId?: string; limit?: number }): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked (keeping the first revocation time); the record, or undefined for an unknown id. */
  revoke(id: string, at: Date): Promise<ApiKeyRecord | undefined>;
  /** Records a use. Stores may skip the write when the stored time is recent. */
  touch(id: string, at: Date): Promise<void>;
}

/** The parts of a key's text, or undefined when it is not an API key's shape. */
export function parseApiKey(key: string): { tenantId: string; id: string; secret: string } | undefined {
  if (typeof key !== 'string') return undefined;
  const m = KEY_PATTERN.exec(key);
  if (!m?.[1] || !m[2]) return undefined;
  const secret = m[2];
  // Only the canonical encoding of 32 bytes: the 43rd character carries 4 bits and 2 zero bits.
  if (Buffer.from(secret, 'base64url').toString('base64url') !== secret) return undefined;
  return { tenantId: m[1], id: secret.slice(0, API_KEY_ID_LENGTH), secret };
}

/** The stored hash of a key's text: SHA-256, or HMAC-SHA-256 when a pepper is given. */
export function hashApiKey(
  key: string,
  pepper?: Uint8Array | string,
): { hash: string; algorithm: ApiKeyHashAlgorithm } {
  if (pepper === undefined) return { hash: createHash('sha256').update(key).digest('base64url'), algorithm: 'sha256' };
  return { hash: createHmac('sha256', pepperBytes(pepper)).update(key).digest('base64url'), algorithm: 'hmac-sha256' };
}

function pepperBytes(pepper: Uint8Array | string): Buffer {
  const b = typeof pepper === 'string' ? Buffer.from(pepper, 'utf8') : Buffer.from(pepper);
  if (b.length < 32) throw new TenantScopeError('INVALID_CONFIG', 'the API key pepper must be at least 32 bytes');
  return b;
}

export interface CreateApiKeyOptions {
  /** The tenant the key authenticates as (syntax of a tenant id). */
  tenantId: string;
  /** Tool names or globs (`query_*`) the key may call. Default: the tenant's whole policy. */
  tools?: readonly string[];
  /** When the key stops working. Default: never (prefer setting one). */
  expiresAt?: Date;
  /** A note for operators, at most 200 characters. */
  label?: string;
  /** HMAC key for the stored hash (32+ bytes); the verifier must be given the same one. */
  pepper?: Uint8Array | string;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * Creates a key and stores its hash. The returned `key` is the only copy of the secret: show it
 * once. Throws INVALID_ARGUMENT for a bad tenant id, tool list, expiry or label (nothing stored).
 */
export async function createApiKey(
  store: ApiKeyStore,
  options: CreateApiKeyOptions,
): Promise<{ key: string; record: ApiKeyRecord }> {
  const now = new Date((options.now ?? Date.now)());
  if (typeof options.tenantId !== 'string' || !DEFAULT_TENANT_ID_PATTERN.test(options.tenantId)) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'tenantId must match the tenant id syntax');
  }
  const tools = options.tools === undefined ? undefined : [...options.tools];
  if (tools && (tools.length > MAX_TOOLS || !tools.every((t) => typeof t === 'string' && TOOL_PATTERN.test(t)))) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'tools must be a list of tool names or globs');
  }
  const expiresAt = options.expiresAt;
  if (expiresAt !== undefined && (!(expiresAt instanceof Date) || !(expiresAt.getTime() > now.getTime()))) {
    throw new TenantScopeError('INVALID_ARGUMENT', 'expiresAt must be a Date in the future');
  }
  if (options.label !== undefined && (typeof options.label !== 'string' || options.label.length > MAX_LABEL)) {
    throw new TenantScopeError('INVALID_ARGUMENT', `label must be a string of at most ${MAX_LABEL} characters`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    // The id (the secret's first characters) is a command-line argument (`tenantscope keys revoke <id>`):
    // one starting with '-' would be read as an option, so such draws are discarded (1 in 64; costs
    // under 0.03 bits of the 256).
    let secret = randomBytes(32).toString('base64url');
    while (secret.startsWith('-')) secret = randomBytes(32).toString('base64url');
    const key = `${API_KEY_PREFIX}${options.tenantId}_${secret}`;
    const { hash, algorithm } = hashApiKey(key, options.pepper);
    const record: ApiKeyRecord = Object.freeze({
      id: secret.slice(0, API_KEY_ID_LENGTH),
      tenantId: options.tenantId,
      hash,
      hashAlgorithm: algorithm,
      tools: tools ? Object.freeze(tools) : undefined,
      label: options.label,
      createdAt: now,
      expiresAt,
      lastUsedAt: undefined,
      revokedAt: undefined,
    });
    if (await store.insert(record)) return { key, record };
  }
  throw apiKeyError('API_KEY_STORE_FAILED', 'no free key id after 3 attempts');
}

/** The token id a key's principal carries (`Tenant.tokenId`), under which a RevocationStore revokes it. */
export function apiKeyTokenId(id: string): string {
  return `api-key:${id}`;
}

/**
 * Revokes a key in its store and, when given, in the RevocationStore the verifiers share (so every
 * replica refuses it at once). Resolves to the record, or undefined for an unknown id.
 */
export async function revokeApiKey(
  store: ApiKeyStore,
  id: string,
  options: { revocations?: RevocationStore; now?: () => number } = {},
): Promise<ApiKeyRecord | undefined> {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new TenantScopeError('INVALID_ARGUMENT', `a key id is ${API_KEY_ID_LENGTH} base64url characters`);
  }
  const now = (options.now ?? Date.now)();
  const record = await store.revoke(id, new Date(now));
  if (record && options.revocations) {
    // The store's flag is permanent; the RevocationStore entry only needs to outlive the key.
    const until = record.expiresAt ?? new Date(now + 400 * 86_400_000);
    await options.revocations.revokeToken(apiKeyTokenId(id), until);
  }
  return record;
}

/** Failed attempts per lookup id. The default is in memory (per replica) and bounded. */
export interface ApiKeyAttemptLimiter {
  /** True while `id` has used up its failures for the current window. */
  blocked(id: string): Promise<boolean>;
  /** Counts one failed attempt for `id`. */
  fail(id: string): Promise<void>;
}

/** Fixed-window failure counter per lookup id in a bounded LRU. */
export class MemoryApiKeyAttemptLimiter implements ApiKeyAttemptLimiter {
  readonly #seen: BoundedLru<string, { start: number; failures: number }>;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(options: { maxFailures?: number; windowMs?: number; maxIds?: number; now?: () => number } = {}) {
    this.#max = options.maxFailures ?? 10;
    this.#windowMs = options.windowMs ?? 60_000;
    if (!Number.isInteger(this.#max) || this.#max <= 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'maxFailures must be a positive integer');
    }
    if (!Number.isFinite(this.#windowMs) || this.#windowMs <= 0) {
      throw new TenantScopeError('INVALID_CONFIG', 'windowMs must be positive');
    }
    this.#seen = new BoundedLru(options.maxIds ?? 10_000);
    this.#now = options.now ?? Date.now;
  }

  #current(id: string): { start: number; failures: number } | undefined {
    const e = this.#seen.peek(id);
    if (e && this.#now() - e.start >= this.#windowMs) {
      this.#seen.delete(id);
      return undefined;
    }
    return e;
  }

  async blocked(id: string): Promise<boolean> {
    return (this.#current(id)?.failures ?? 0) >= this.#max;
  }

  async fail(id: string): Promise<void> {
    const e = this.#current(id) ?? { start: this.#now(), failures: 0 };
    e.failures += 1;
    this.#seen.set(id, e);
  }
}

/** Single-process key store for tests and development. Bounded. */
export class MemoryApiKeyStore implements ApiKeyStore {
  readonly #keys = new Map<string, ApiKeyRecord>();
  readonly #max: number;

  constructor(options: { maxKeys?: number } = {}) {
    this.#max = options.maxKeys ?? 10_000;
  }

  async insert(record: ApiKeyRecord): Promise<boolean> {
    if (this.#keys.has(record.id)) return false;
    if (this.#keys.size >= this.#max) throw apiKeyError('API_KEY_STORE_FAILED', 'key store is full');
    this.#keys.set(record.id, Object.freeze({ ...record }));
    return true;
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    return this.#keys.get(id);
  }

  async list(options: { tenantId?: string; limit?: number } = {}): Promise<ApiKeyRecord[]> {
    const all = [...this.#keys.values()].filter(
      (r) => options.tenantId === undefined || r.tenantId === options.tenantId,
    );
    all.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    return all.slice(0, Math.min(options.limit ?? 1000, 1000));
  }

  async revoke(id: string, at: Date): Promise<ApiKeyRecord | undefined> {
    const r = this.#keys.get(id);
    if (!r) return undefined;
    const next = Object.freeze({ ...r, revokedAt: r.revokedAt ?? at });
    this.#keys.set(id, next);
    return next;
  }

  async touch(id: string, at: Date): Promise<void> {
    const r = this.#keys.get(id);
    if (r) this.#keys.set(id, Object.freeze({ ...r, lastUsedAt: at }));
  }
}

export interface ApiKeyVerifierOptions {
  /** Where the keys are. */
  store: ApiKeyStore;
  /** The pepper keys were created with, if any (HMAC-SHA-256 hashes cannot be checked without it). */
  pepper?: Uint8Array | string;
  /**
   * The RevocationStore the JWT verifier uses: a key is refused when its token id
   * (`api-key:<id>`, see `apiKeyTokenId`) is revoked there, or its tenant is halted.
   */
  revocations?: RevocationStore;
  /** Failed-attempt limiter per lookup id. Default: `MemoryApiKeyAttemptLimiter` (10 failures per 60 s). */
  attempts?: ApiKeyAttemptLimiter;
  /** Least time between two last-used writes for one key, in ms. Default 60,000. */
  lastUsedWriteMs?: number;
  /** Called when a last-used write fails (the request is not refused for it). */
  onTouchError?: (err: unknown) => void;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * A verifier that accepts `Authorization: Bearer tsk_…` API keys beside whatever `jwt` accepts
 * (any token not starting with `tsk_` goes to `jwt`). The principal's tenant, tools and expiry come
 * from the stored record: subject and token id are `api-key:<id>`, issuer `tenantscope:api-key`.
 * Refusals carry AUTH_API_KEY_* codes; those after the secret matched are attributed to the
 * record's tenant (`details.tenantHint`) for the audit trail, the others to no tenant.
 */
export function withApiKeys(jwt: TokenVerifier, options: ApiKeyVerifierOptions): TokenVerifier {
  if (!options?.store) throw new TenantScopeError('INVALID_CONFIG', 'withApiKeys: store is required');
  const pepper = options.pepper === undefined ? undefined : pepperBytes(options.pepper);
  const attempts = options.attempts ?? new MemoryApiKeyAttemptLimiter({ now: options.now });
  const now = options.now ?? Date.now;
  const writeEvery = options.lastUsedWriteMs ?? 60_000;
  const touched = new BoundedLru<string, number>(10_000);

  async function verifyKey(token: string): Promise<Tenant> {
    const parsed = parseApiKey(token);
    if (!parsed) throw apiKeyError('AUTH_API_KEY_INVALID', 'API key is malformed');
    if (await attempts.blocked(parsed.id)) {
      throw apiKeyError('AUTH_RATE_LIMITED', 'too many failed attempts for this API key; retry later');
    }
    const record = await options.store.get(parsed.id);
    if (!record) throw apiKeyError('AUTH_API_KEY_INVALID', 'API key is not valid');
    if (!hashMatches(token, record, pepper)) {
      await attempts.fail(parsed.id);
      throw apiKeyError('AUTH_API_KEY_INVALID', 'API key is not valid');
    }
    // From here the caller proved the secret: refusals are attributed to the record's tenant.
    const details = { tenantHint: record.tenantId, subjectHint: apiKeyTokenId(record.id) };
    if (parsed.tenantId !== record.tenantId) {
      await attempts.fail(parsed.id);
      throw apiKeyError('AUTH_API_KEY_TENANT_MISMATCH', 'API key does not belong to the tenant it names', {
        details,
      });
    }
    const t = now();
    if (record.revokedAt !== undefined) throw apiKeyError('AUTH_API_KEY_REVOKED', 'API key was revoked', { details });
    if (record.expiresAt !== undefined && record.expiresAt.getTime() <= t) {
      throw apiKeyError('AUTH_API_KEY_EXPIRED', 'API key has expired', { details });
    }
    if (options.revocations) {
      if (await options.revocations.isTokenRevoked(apiKeyTokenId(record.id))) {
        throw apiKeyError('AUTH_API_KEY_REVOKED', 'API key was revoked', { details });
      }
      if (await options.revocations.isTenantHalted(record.tenantId)) {
        throw new TenantScopeError('TENANT_HALTED', 'tenant is halted', { details });
      }
    }
    touch(record, t);
    return mintTenant({
      id: record.tenantId,
      subject: apiKeyTokenId(record.id),
      allowedTools: record.tools,
      resourcePrefix: undefined,
      tokenId: apiKeyTokenId(record.id),
      issuer: API_KEY_ISSUER,
      expiresAt: new Date(
        Math.min(record.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY, t + OPEN_ENDED_PRINCIPAL_MS),
      ),
    });
  }

  function touch(record: ApiKeyRecord, t: number): void {
    const last = Math.max(touched.get(record.id) ?? 0, record.lastUsedAt?.getTime() ?? 0);
    if (t - last < writeEvery) return;
    touched.set(record.id, t);
    options.store.touch(record.id, new Date(t)).catch((err) => options.onTouchError?.(err));
  }

  return {
    audience: jwt.audience,
    issuers: jwt.issuers,
    async verify(token: string): Promise<Tenant> {
      if (typeof token !== 'string' || !token.startsWith(API_KEY_PREFIX)) return jwt.verify(token);
      try {
        return await verifyKey(token);
      } catch (err) {
        if (isTenantScopeError(err)) throw err;
        // A store that cannot answer: refuse, as for unavailable JWT keys; the driver's error stays the cause.
        throw new TenantScopeError('AUTH_KEYS_UNAVAILABLE', 'API key could not be checked', { cause: err });
      }
    },
  };
}

function hashMatches(key: string, record: ApiKeyRecord, pepper: Buffer | undefined): boolean {
  let expected: string;
  if (record.hashAlgorithm === 'sha256') expected = hashApiKey(key).hash;
  else if (record.hashAlgorithm === 'hmac-sha256' && pepper) expected = hashApiKey(key, pepper).hash;
  else return false; // an HMAC record with no pepper configured, or an unknown algorithm
  const a = Buffer.from(expected, 'base64url');
  const b = Buffer.from(record.hash, 'base64url');
  return a.length === b.length && timingSafeEqual(a, b);
}
