import { TenantScopeError } from './errors.ts';

/**
 * The verified tenant principal. Only the token verifier in this module can create one: the
 * constructor is guarded by a module-private key, and `isTenant` checks a module-private registry,
 * so an object literal, a spread copy or a deserialised value is never accepted as a Tenant.
 */
const minted = new WeakSet<object>();
const constructKey = Symbol('tenantscope.tenant.construct');

/** Default syntax for tenant ids: lowercase letters, digits, `_` and `-`, 1–63 characters. */
export const DEFAULT_TENANT_ID_PATTERN = /^[a-z0-9](?:[a-z0-9_-]{0,62})$/;

export interface TenantInit {
  /** Tenant id taken from the verified token's tenant claim. */
  id: string;
  /** The token's `sub`. */
  subject: string;
  /** The token's `allowed_tools` claim (names or globs), if it had one. */
  allowedTools: readonly string[] | undefined;
  /** The token's `resource_prefix` claim, if it had one. */
  resourcePrefix: string | undefined;
  /** The token's `jti`, if it had one. */
  tokenId: string | undefined;
  /** The token's `iss`. */
  issuer: string;
  /** When the token expires. */
  expiresAt: Date;
}

export class Tenant {
  readonly id: string;
  readonly subject: string;
  readonly allowedTools: readonly string[] | undefined;
  readonly resourcePrefix: string | undefined;
  readonly tokenId: string | undefined;
  readonly issuer: string;
  readonly expiresAt: Date;

  /** @internal Use a verifier; this throws for any other caller. */
  constructor(key: symbol, init: TenantInit) {
    if (key !== constructKey) {
      throw new TenantScopeError('NOT_A_TENANT', 'A Tenant can only be created by the token verifier');
    }
    this.id = init.id;
    this.subject = init.subject;
    this.allowedTools = init.allowedTools ? Object.freeze([...init.allowedTools]) : undefined;
    this.resourcePrefix = init.resourcePrefix;
    this.tokenId = init.tokenId;
    this.issuer = init.issuer;
    this.expiresAt = new Date(init.expiresAt.getTime());
    Object.freeze(this);
    minted.add(this);
  }

  /** Logs and JSON show the tenant and subject only. */
  toJSON(): { tenant_id: string; subject: string } {
    return { tenant_id: this.id, subject: this.subject };
  }
}

/** @internal Called by the verifier only. Not exported from the package entry point. */
export function mintTenant(init: TenantInit): Tenant {
  return new Tenant(constructKey, init);
}

/** True only for a Tenant created by a verifier of this package. */
export function isTenant(value: unknown): value is Tenant {
  return typeof value === 'object' && value !== null && minted.has(value);
}

/**
 * Throws NOT_A_TENANT unless `value` is a verified Tenant. Adapters call this on every
 * `forTenant`, so a string or a look-alike object never becomes a scope.
 */
export function assertTenant(value: unknown, where = 'this call'): asserts value is Tenant {
  if (!isTenant(value)) {
    throw new TenantScopeError(
      'NOT_A_TENANT',
      `${where} needs a verified Tenant from @tenantscope/core; got ${describe(value)}`,
    );
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'object') return 'an object that no verifier created';
  return typeof value;
}
