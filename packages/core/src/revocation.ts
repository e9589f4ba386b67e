import { TenantScopeError } from './errors.ts';

/**
 * Shared state for token revocation and tenant halt. With several replicas, use an
 * implementation backed by a shared store (for example the Postgres one in
 * `@tenantscope/postgres`); the in-memory one is for a single process.
 */
export interface RevocationStore {
  /** True when the token with this `jti` was revoked. */
  isTokenRevoked(jti: string): Promise<boolean>;
  /** Revoke a token id until `expiresAt` (after which the token is dead anyway). */
  revokeToken(jti: string, expiresAt: Date): Promise<void>;
  /** True when the tenant is halted: every request and session of it is refused. */
  isTenantHalted(tenantId: string): Promise<boolean>;
  /** Halt a tenant (EU AI Act human oversight: stop one tenant's agents now). */
  haltTenant(tenantId: string, reason: string): Promise<void>;
  /** Lift a halt. */
  resumeTenant(tenantId: string): Promise<void>;
}

export interface MemoryRevocationStoreOptions {
  /** Most revoked token ids held at once. Default 100,000. Past it, revoking fails loudly. */
  maxRevokedTokens?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** Single-process revocation store. Bounded: expired entries are swept, and the cap is enforced. */
export class MemoryRevocationStore implements RevocationStore {
  readonly #revoked = new Map<string, number>();
  readonly #halted = new Map<string, string>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: MemoryRevocationStoreOptions = {}) {
    this.#max = options.maxRevokedTokens ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  async isTokenRevoked(jti: string): Promise<boolean> {
    const until = this.#revoked.get(jti);
    if (until === undefined) return false;
    if (until <= this.#now()) {
      this.#revoked.delete(jti);
      return false;
    }
    return true;
  }

  async revokeToken(jti: string, expiresAt: Date): Promise<void> {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) {
      throw new TenantScopeError('INVALID_ARGUMENT', 'jti must be a non-empty string of at most 256 characters');
    }
    if (this.#revoked.size >= this.#max) this.#sweep();
    if (this.#revoked.size >= this.#max) {
      // Dropping a revocation would silently re-enable a token: refuse instead.
      throw new TenantScopeError('INTERNAL', 'revocation store is full');
    }
    this.#revoked.set(jti, expiresAt.getTime());
  }

  async isTenantHalted(tenantId: string): Promise<boolean> {
    return this.#halted.has(tenantId);
  }

  async haltTenant(tenantId: string, reason: string): Promise<void> {
    this.#halted.set(tenantId, reason);
  }

  async resumeTenant(tenantId: string): Promise<void> {
    this.#halted.delete(tenantId);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [jti, until] of this.#revoked) if (until <= now) this.#revoked.delete(jti);
  }
}
