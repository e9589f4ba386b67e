import {
  assertTenant,
  type CallInfo,
  type DeleteResult,
  type ResourceProvider,
  type ScopedAdapter,
  type StoreCount,
  type Tenant,
  type TenantDataOps,
  TenantScopeError,
} from '@tenantscope/core';
import { SecretCache, type SecretsStats } from './cache.ts';
import { secretsError } from './errors.ts';
import {
  assertSecretName,
  defaultNaming,
  defaultTenantPrefix,
  resolvePath,
  SECRET_NAME_PATTERN,
  type SecretNaming,
} from './naming.ts';
import type { SecretsProvider, SecretValue, VersionSelector } from './provider.ts';

/** Default cache TTL: 5 minutes. */
export const DEFAULT_TTL_MS = 5 * 60_000;
/** Largest TTL accepted: 1 hour. */
export const MAX_TTL_MS = 60 * 60_000;
/** Default cache size (entries across all tenants). */
export const DEFAULT_MAX_ENTRIES = 10_000;
/** Values shorter than this cannot be redacted by core, so they are never handed out. */
export const MIN_SECRET_LENGTH = 4;

export interface ScopedSecretsOptions {
  /** Where the secrets live: `awsSecretsManager(...)`, `postgresSecrets(...)`, or your own. */
  provider: SecretsProvider;
  /**
   * Maps (tenant, name) to the provider's identifier. Default `tenants/<tenant>/<name>`. Called
   * only with a verified tenant and a validated name; its output is checked too.
   */
  naming?: SecretNaming;
  /**
   * The prefix every identifier of a tenant starts with, for listing (DSAR). Required with a
   * custom `naming`; default `tenants/<tenant>/`.
   */
  tenantPrefix?: (tenant: Tenant) => string;
  /** How long a value is served from the cache, in ms. Default 5 min, max 1 h; 0 disables caching. */
  ttl?: number;
  /** Most cached values across all tenants; least recently used are evicted. Default 10,000. */
  maxEntries?: number;
  /** Clock in ms, for tests. Default `Date.now`. */
  now?: () => number;
}

/** Options for one read. */
export interface GetSecretOptions extends VersionSelector {}

/** @deprecated use `ScopedSecretsOptions`. */
export type SecretsInjectorOptions = ScopedSecretsOptions;

/**
 * One tenant's secrets. What a tool sees as `ctx.secrets`: only the names its definition declared.
 * (Before 0.2 this type was called `ScopedSecrets`; that name is now the factory's.)
 */
export interface TenantSecrets {
  /** The tenant these secrets belong to. */
  readonly tenantId: string;
  /** Reads a declared secret for the calling tenant (current version unless pinned). */
  get(name: string, options?: GetSecretOptions): Promise<string>;
  /** Reads several declared secrets (current versions); all or nothing. */
  getMany(names: readonly string[]): Promise<Record<string, string>>;
  /** Reads a declared secret and parses it as JSON. */
  getJson<T = unknown>(name: string, options?: GetSecretOptions): Promise<T>;
  /**
   * Drops the cached value and fetches the current one, for rotation (e.g. after a downstream
   * call failed authentication). At most one fetch per name per call; concurrent refreshes of
   * one key share a fetch.
   */
  refresh(name: string): Promise<string>;
  /** The names this call may read (empty for a `forTenant` handle built without `declared`: any name). */
  readonly declared: readonly string[];
}

/** Options of `forTenant`, for code outside a tool call (jobs, scripts). */
export interface ForTenantOptions {
  /** The only names the handle may read. Default: any valid name of the tenant. */
  declared?: readonly string[];
  /** Aborts reads in flight. */
  signal?: AbortSignal;
}

export type { SecretsStats } from './cache.ts';

/** A secret's name as exported for a DSAR: never its value. */
export interface SecretNameRecord {
  name: string;
}

/**
 * Per-tenant secrets injected at call time. `provider()` plugs it into core as `ctx.secrets`;
 * the cache is keyed by (tenant, name, version) and every value handed to a call is registered
 * with the call for redaction.
 */
export class ScopedSecrets implements ScopedAdapter<TenantSecrets, SecretNameRecord> {
  readonly #provider: SecretsProvider;
  readonly #naming: SecretNaming;
  readonly #prefix: (tenant: Tenant) => string;
  readonly #cache: SecretCache;

  constructor(options: ScopedSecretsOptions) {
    if (!options?.provider) throw new TenantScopeError('INVALID_CONFIG', 'secretsInjector needs a provider');
    const ttl = options.ttl ?? DEFAULT_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < 0 || ttl > MAX_TTL_MS) {
      throw new TenantScopeError('INVALID_CONFIG', `ttl must be between 0 and ${MAX_TTL_MS} ms`);
    }
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(maxEntries) || maxEntries <= 0 || maxEntries > 10_000_000) {
      throw new TenantScopeError('INVALID_CONFIG', 'maxEntries must be a positive integer');
    }
    if (options.naming && !options.tenantPrefix) {
      // Without it a DSAR could not find the tenant's secrets; fail at start-up, not at export time.
      throw new TenantScopeError('INVALID_CONFIG', 'a custom naming needs tenantPrefix too');
    }
    this.#provider = options.provider;
    this.#naming = options.naming ?? defaultNaming;
    this.#prefix = options.tenantPrefix ?? defaultTenantPrefix;
    this.#cache = new SecretCache({ ttl, maxEntries, now: options.now ?? Date.now });
  }

  /** The TTL in force, in ms. */
  get ttl(): number {
    return this.#cache.ttl;
  }

  /** The ResourceProvider to pass to core: `providers: { secrets: injector.provider() }`. */
  provider(): ResourceProvider<TenantSecrets> {
    return {
      forCall: (call) => this.#forCall(call),
      release: (resource) => {
        closers.get(resource)?.();
      },
    };
  }

  /**
   * One tenant's secrets outside a tool call (jobs, scripts): reads only `declared` names when
   * given. Values read here are not registered for redaction (there is no call); inside a tool use
   * `ctx.secrets` from `provider()`.
   */
  forTenant(tenant: Tenant, options: ForTenantOptions = {}): TenantSecrets {
    assertTenant(tenant, 'secrets.forTenant');
    const noop = () => {};
    return this.#forCall(
      {
        tenant,
        subject: tenant.subject,
        sessionId: '',
        requestId: '',
        toolName: 'forTenant',
        declaredSecrets: options.declared ?? [],
        signal: options.signal ?? new AbortController().signal,
        logger: { debug: noop, info: noop, warn: noop, error: noop },
        addRedaction: noop,
      },
      options.declared === undefined,
    );
  }

  /**
   * Export and erasure of one verified tenant's secrets: `count()` (`parts: { secrets }`),
   * `export()` (names only, never values), `delete()` (every secret, then a recount that must be 0).
   */
  tenantData(tenant: Tenant): TenantDataOps<SecretNameRecord> {
    assertTenant(tenant, 'secrets.tenantData');
    const count = async (): Promise<StoreCount> => secretCount((await this.#listOwn(tenant)).length);
    return {
      store: 'secrets',
      count,
      export: () => this.#exportNames(tenant),
      delete: async (): Promise<DeleteResult> => {
        const { deleted } = await this.deleteTenant(tenant);
        const after = await count();
        if (after.total !== 0) {
          throw secretsError('SECRET_DSAR_INCOMPLETE', `${after.total} secret(s) remained after the delete`, {
            details: { remaining: after.total },
          });
        }
        return { before: secretCount(deleted.length), after };
      },
    };
  }

  async *#exportNames(tenant: Tenant): AsyncGenerator<SecretNameRecord> {
    for (const name of await this.#listNames(tenant)) yield { name };
  }

  /** Counters for tests and metrics. */
  stats(): SecretsStats {
    return this.#cache.stats();
  }

  /** Drops every cached value of one tenant (e.g. after it was moved or erased). */
  invalidateTenant(tenant: Tenant): number {
    assertTenant(tenant, 'secrets.invalidateTenant');
    return this.#cache.dropTenant(tenant.id);
  }

  /**
   * Operator access to one tenant's secrets: write (seed, rotate) and delete. Not for tool
   * handlers: it bypasses the declared-names check and registers no redaction.
   */
  unscopedAdmin(tenant: Tenant): {
    put(name: string, value: string): Promise<{ versionId?: string }>;
    delete(name: string): Promise<boolean>;
  } {
    assertTenant(tenant, 'secrets.unscopedAdmin');
    return {
      put: async (name, value) => {
        assertSecretName(name);
        if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) {
          throw secretsError(
            'SECRET_VALUE_INVALID',
            `a secret value must be a string of at least ${MIN_SECRET_LENGTH} characters`,
          );
        }
        const id = resolvePath(this.#naming, tenant, name);
        this.#cache.countFetch();
        return this.#provider.put({ tenant, id, value });
      },
      delete: async (name) => {
        assertSecretName(name);
        const id = resolvePath(this.#naming, tenant, name);
        this.#cache.countFetch();
        const deleted = await this.#provider.delete({ tenant, id });
        this.#cache.dropName(tenant.id, name);
        return deleted;
      },
    };
  }

  /** DSAR export: the names of one tenant's secrets. Never values. */
  async exportTenant(tenant: Tenant): Promise<{ tenant_id: string; secrets: SecretNameRecord[] }> {
    assertTenant(tenant, 'secrets.exportTenant');
    const names = await this.#listNames(tenant);
    return { tenant_id: tenant.id, secrets: names.map((name) => ({ name })) };
  }

  /** DSAR erase: deletes every secret of one tenant and drops its cache entries. Returns the names. */
  async deleteTenant(tenant: Tenant): Promise<{ tenant_id: string; deleted: string[] }> {
    assertTenant(tenant, 'secrets.deleteTenant');
    const deleted: string[] = [];
    for (const { name, id } of await this.#listOwn(tenant)) {
      this.#cache.countFetch();
      if (await this.#provider.delete({ tenant, id })) deleted.push(name);
    }
    await this.#provider.eraseTenant?.({ tenant });
    this.invalidateTenant(tenant);
    return { tenant_id: tenant.id, deleted: deleted.sort() };
  }

  async #listNames(tenant: Tenant): Promise<string[]> {
    return (await this.#listOwn(tenant)).map((x) => x.name).sort();
  }

  /**
   * The tenant's secrets: identifiers under its prefix whose remainder is a valid name that the
   * naming maps back to exactly that identifier. A too-broad prefix therefore never reaches
   * another tenant's secrets (`tenants/` + `globex/k` is not a name).
   */
  async #listOwn(tenant: Tenant): Promise<{ name: string; id: string }[]> {
    const prefix = this.#tenantPrefix(tenant);
    this.#cache.countFetch();
    const ids = await this.#provider.list({ tenant, prefix });
    const out: { name: string; id: string }[] = [];
    for (const id of ids) {
      if (!id.startsWith(prefix)) continue;
      const name = id.slice(prefix.length);
      if (!SECRET_NAME_PATTERN.test(name) || resolvePath(this.#naming, tenant, name) !== id) continue;
      out.push({ name, id });
    }
    return out;
  }

  #tenantPrefix(tenant: Tenant): string {
    const prefix = this.#prefix(tenant);
    if (typeof prefix !== 'string' || prefix.length === 0 || !prefix.includes(tenant.id)) {
      throw new TenantScopeError('INVALID_CONFIG', 'tenantPrefix must return a non-empty prefix naming the tenant');
    }
    return prefix;
  }

  // --- per call -------------------------------------------------------------------------------

  #forCall(call: CallInfo, anyName = false): TenantSecrets {
    const tenant = call.tenant;
    assertTenant(tenant, 'secrets.forCall');
    const declared = Object.freeze([...new Set(call.declaredSecrets)]);
    const allowed = anyName ? undefined : new Set(declared);
    const refreshed = new Map<string, Promise<string>>();
    let closed = false;

    const admit = (name: unknown): string => {
      if (closed) throw secretsError('SECRET_CONTEXT_CLOSED', 'secrets cannot be read after the call ended');
      assertSecretName(name);
      if (allowed && !allowed.has(name)) {
        throw secretsError('SECRET_NOT_DECLARED', `secret "${name}" is not declared by tool ${call.toolName}`);
      }
      return name;
    };
    const hand = (value: string): string => {
      if (closed) throw secretsError('SECRET_CONTEXT_CLOSED', 'secrets cannot be read after the call ended');
      registerRedactions(call, value);
      return value;
    };

    const scoped: TenantSecrets = {
      tenantId: tenant.id,
      declared,
      get: async (name, options = {}) => {
        const n = admit(name);
        const version = checkVersion(options);
        const id = resolvePath(this.#naming, tenant, n);
        const value = await abortable(this.#read(tenant, n, id, version), call.signal);
        return hand(value);
      },
      getJson: async <T>(name: string, options: GetSecretOptions = {}) => {
        const raw = await scoped.get(name, options);
        try {
          return JSON.parse(raw) as T;
        } catch {
          throw secretsError('SECRET_UNAVAILABLE', `secret "${name}" is not JSON`);
        }
      },
      getMany: async (names) => {
        if (!Array.isArray(names)) throw secretsError('SECRET_NAME_INVALID', 'getMany takes a list of names');
        const list = [...new Set(names.map((n) => admit(n)))]; // every name checked before any fetch
        const values = await abortable(this.#readMany(tenant, list), call.signal);
        const out: Record<string, string> = {};
        for (const n of list) out[n] = hand(values.get(n) as string);
        return out;
      },
      refresh: async (name) => {
        const n = admit(name);
        const id = resolvePath(this.#naming, tenant, n);
        let p = refreshed.get(n);
        if (!p) {
          p = this.#refresh(tenant, n, id);
          refreshed.set(n, p);
        } else {
          // Already refreshed in this call: serve the refreshed value without another fetch.
          p = p.then(() => this.#read(tenant, n, id, {}));
        }
        return hand(await abortable(p, call.signal));
      },
    };
    Object.freeze(scoped);
    closers.set(scoped, () => {
      closed = true;
    });
    return scoped;
  }

  // --- provider reads through the cache ------------------------------------------------------

  #read(tenant: Tenant, name: string, id: string, version: VersionSelector): Promise<string> {
    return this.#cache.read(tenant.id, name, version, async () =>
      checkValue(await this.#provider.get({ tenant, id, version })),
    );
  }

  #refresh(tenant: Tenant, name: string, id: string): Promise<string> {
    return this.#cache.refresh(tenant.id, name, async () =>
      checkValue(await this.#provider.get({ tenant, id, version: {} })),
    );
  }

  #readMany(tenant: Tenant, names: string[]): Promise<Map<string, string>> {
    return this.#cache.readMany(
      tenant.id,
      names,
      (name) => resolvePath(this.#naming, tenant, name),
      (missing) => this.#provider.getMany({ tenant, ids: missing.map((m) => m.ref) }),
      (values, name, id) => {
        const got = values.get(id);
        if (!got) throw secretsError('SECRET_BACKEND_FAILED', `secret "${name}" was missing from the batch answer`);
        return checkValue(got);
      },
    );
  }
}

const closers = new WeakMap<object, () => void>();

/** Creates the tenant-scoping secrets factory; plug `secrets.provider()` into core as `ctx.secrets`. */
export function scopedSecrets(options: ScopedSecretsOptions): ScopedSecrets {
  return new ScopedSecrets(options);
}

/** @deprecated use `scopedSecrets` (the same function). */
export const secretsInjector = scopedSecrets;
/** @deprecated use `ScopedSecrets` (the same class). */
export const SecretsInjector = ScopedSecrets;
/** @deprecated use `ScopedSecrets`. */
export type SecretsInjector = ScopedSecrets;

function secretCount(secrets: number): StoreCount {
  return { store: 'secrets', total: secrets, parts: { secrets } };
}

const VERSION_ID = /^[A-Za-z0-9-]{1,64}$/;
const VERSION_STAGE = /^[A-Za-z0-9_.-]{1,256}$/;

function checkVersion(options: unknown): VersionSelector {
  if (options === null || typeof options !== 'object') {
    throw secretsError('SECRET_NAME_INVALID', 'read options must be an object');
  }
  const { versionId, versionStage, ...rest } = options as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw secretsError('SECRET_NAME_INVALID', 'unknown read option');
  if (versionId !== undefined && (typeof versionId !== 'string' || !VERSION_ID.test(versionId))) {
    throw secretsError('SECRET_NAME_INVALID', 'invalid versionId');
  }
  if (versionStage !== undefined && (typeof versionStage !== 'string' || !VERSION_STAGE.test(versionStage))) {
    throw secretsError('SECRET_NAME_INVALID', 'invalid versionStage');
  }
  if (versionId !== undefined && versionStage !== undefined) {
    throw secretsError('SECRET_NAME_INVALID', 'give versionId or versionStage, not both');
  }
  const out: VersionSelector = {};
  if (versionId !== undefined) out.versionId = versionId as string;
  if (versionStage !== undefined && versionStage !== 'AWSCURRENT') out.versionStage = versionStage as string;
  return out;
}

function checkValue(got: SecretValue): string {
  if (!got || typeof got.value !== 'string') {
    throw secretsError('SECRET_BACKEND_FAILED', 'the provider returned no value');
  }
  if (got.value.length < MIN_SECRET_LENGTH) {
    // core cannot mask values this short, so handing one out could leak it.
    throw secretsError('SECRET_UNAVAILABLE', `secret values shorter than ${MIN_SECRET_LENGTH} characters are refused`);
  }
  return got.value;
}

/**
 * Registers the value for redaction in logs and results, with the encodings a handler most often
 * produces by accident (base64, base64url, URL-encoding, JSON string escaping), and each string
 * inside a JSON secret.
 */
function registerRedactions(call: CallInfo, value: string): void {
  for (const v of encodings(value)) call.addRedaction(v);
  const trimmed = value.trimStart();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return;
  }
  const walk = (v: unknown, depth: number): void => {
    if (depth > 16) return;
    if (typeof v === 'string') {
      if (v.length >= MIN_SECRET_LENGTH) for (const e of encodings(v)) call.addRedaction(e);
    } else if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(parsed, 0);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function encodings(value: string): Set<string> {
  const buf = Buffer.from(value, 'utf8');
  const out = new Set([value, buf.toString('base64'), buf.toString('base64url'), encodeURIComponent(value)]);
  out.add(JSON.stringify(value).slice(1, -1));
  return out;
}
