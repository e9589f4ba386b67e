/**
 * Continuation tokens bound to one tenant's listing. The server's own token is sealed with
 * AES-256-GCM; the bucket, the tenant prefix and the listing's filter are the additional
 * authenticated data, so a token minted for another tenant (or another listing) fails to open and
 * is refused. The sealed form also hides the server token, which can contain a key name.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { TenantScopeError } from '@tenantscope/core';
import { s3Error } from './errors.ts';

export interface TokenSealer {
  seal(serverToken: string, binding: string): string;
  /** Returns the server token, or throws `S3_TOKEN_INVALID`. */
  open(sealed: unknown, binding: string): string;
}

export function createTokenSealer(secret: string | Uint8Array | undefined, ttlSeconds: number): TokenSealer {
  let raw: Uint8Array;
  if (secret === undefined) raw = randomBytes(32);
  else raw = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (raw.byteLength < 32) {
    throw new TenantScopeError('INVALID_CONFIG', 'tokenSecret must be at least 32 bytes');
  }
  const key = Buffer.from(hkdfSync('sha256', raw, 'tenantscope-s3', 'list-continuation-token/v1', 32));
  const invalid = (reason: string) =>
    s3Error('S3_TOKEN_INVALID', 'continuation token is not valid for this listing', { details: { reason } });

  return {
    seal(serverToken, binding) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(binding, 'utf8'));
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
      const body = Buffer.concat([cipher.update(JSON.stringify({ t: serverToken, e: exp }), 'utf8'), cipher.final()]);
      return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
    },
    open(sealed, binding) {
      if (
        typeof sealed !== 'string' ||
        sealed.length === 0 ||
        sealed.length > 8192 ||
        !/^[A-Za-z0-9_-]+$/.test(sealed)
      ) {
        throw invalid('malformed');
      }
      const buf = Buffer.from(sealed, 'base64url');
      if (buf.byteLength < 12 + 16 + 1) throw invalid('malformed');
      let payload: { t?: unknown; e?: unknown };
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
        decipher.setAAD(Buffer.from(binding, 'utf8'));
        decipher.setAuthTag(buf.subarray(buf.byteLength - 16));
        const plain = Buffer.concat([decipher.update(buf.subarray(12, buf.byteLength - 16)), decipher.final()]);
        payload = JSON.parse(plain.toString('utf8'));
      } catch {
        throw invalid('not_sealed_for_this_listing');
      }
      if (typeof payload.t !== 'string' || typeof payload.e !== 'number') throw invalid('malformed');
      if (payload.e < Date.now() / 1000) throw invalid('expired');
      return payload.t;
    },
  };
}
