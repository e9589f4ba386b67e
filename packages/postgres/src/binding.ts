import { createHmac, randomBytes } from 'node:crypto';
import { DEFAULT_TENANT_ID_PATTERN } from '@tenantscope/core';
import { pgError } from './errors.ts';

/** Default name of the setting that carries the tenant binding inside a transaction. */
export const DEFAULT_TENANT_SETTING = 'app.tenant_id';

/** Separator inside MAC'd messages. Tenant ids never contain it. */
const SEP = '\u001f';

/** HMAC-SHA-256 keys are 64 bytes: one SHA-256 block, so the database needs no padding logic. */
export const BINDING_KEY_BYTES = 64;

/** A fresh random binding key. */
export function generateBindingKey(): Buffer {
  return randomBytes(BINDING_KEY_BYTES);
}

/**
 * Accepts a key as bytes, or as a hex or base64 string, and checks its length.
 * @internal
 */
export function normaliseBindingKey(key: Uint8Array | string): Buffer {
  let buf: Buffer;
  if (typeof key === 'string') {
    buf =
      /^[0-9a-f]+$/i.test(key) && key.length === BINDING_KEY_BYTES * 2
        ? Buffer.from(key, 'hex')
        : Buffer.from(key, 'base64');
  } else {
    buf = Buffer.from(key);
  }
  if (buf.length !== BINDING_KEY_BYTES) {
    throw pgError('PG_BINDING_REFUSED', `binding key must be ${BINDING_KEY_BYTES} bytes`);
  }
  return buf;
}

/** The two padded keys HMAC uses, stored in the database so it needs no extension. @internal */
export function paddedKeys(key: Buffer): { inner: Buffer; outer: Buffer } {
  const inner = Buffer.alloc(BINDING_KEY_BYTES);
  const outer = Buffer.alloc(BINDING_KEY_BYTES);
  for (let i = 0; i < BINDING_KEY_BYTES; i++) {
    inner[i] = (key[i] as number) ^ 0x36;
    outer[i] = (key[i] as number) ^ 0x5c;
  }
  return { inner, outer };
}

/** Checks a tenant id is safe to bind (the core pattern: no separators, no quotes). @internal */
export function assertBindableTenantId(id: string): void {
  if (typeof id !== 'string' || !DEFAULT_TENANT_ID_PATTERN.test(id)) {
    throw pgError('PG_BINDING_REFUSED', 'tenant id is not bindable');
  }
}

/**
 * Creates the short-lived token the client hands to `tenantscope.bind(…)` (per transaction) or
 * `tenantscope.bind_session(…)` (a hot connection). It is only ever sent as a bind parameter, so
 * it never appears in a setting, in `pg_stat_activity` or in a statement a tenant's SQL can read.
 * @internal
 */
export function clientToken(
  key: Buffer,
  setting: string,
  tenantId: string,
  nowSeconds = Math.floor(Date.now() / 1000),
) {
  assertBindableTenantId(tenantId);
  const mac = createHmac('sha256', key)
    .update(['c', setting, tenantId, String(nowSeconds)].join(SEP))
    .digest('hex');
  return `c:${tenantId}:${nowSeconds}:${mac}`;
}

/** Caches the token per tenant for a second: HMAC is cheap, but this path is hot. @internal */
export class TokenCache {
  readonly #key: Buffer;
  readonly #setting: string;
  #second = 0;
  #tokens = new Map<string, string>();
  constructor(key: Buffer, setting: string) {
    this.#key = key;
    this.#setting = setting;
  }
  get(tenantId: string): string {
    const now = Math.floor(Date.now() / 1000);
    if (now !== this.#second) {
      this.#second = now;
      this.#tokens = new Map();
    }
    let t = this.#tokens.get(tenantId);
    if (t === undefined) {
      t = clientToken(this.#key, this.#setting, tenantId, now);
      // bounded: at most one entry per tenant seen within the current second, and capped
      if (this.#tokens.size < 10_000) this.#tokens.set(tenantId, t);
    }
    return t;
  }
}
