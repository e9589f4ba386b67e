import { createHash, createSecretKey, type KeyObject, type webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  importSPKI,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { TenantScopeError } from './errors.ts';
import { assertNoDuplicateMembers } from './jwt-json.ts';
import { BoundedLru } from './lru.ts';
import type { RevocationStore } from './revocation.ts';
import { DEFAULT_TENANT_ID_PATTERN, mintTenant, type Tenant } from './tenant.ts';

const ASYMMETRIC_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
const HMAC_ALGS = ['HS256'];

/** Where the verification keys come from. Exactly one. */
export type KeySource =
  | {
      /** A JWKS URL. Keys are cached; an unknown `kid` triggers a re-fetch (rotation), rate-limited by `cooldownMs`. */
      jwksUrl: string | URL;
      /** Minimum time between re-fetches on an unknown kid. Default 30 s. */
      cooldownMs?: number;
      /** How long fetched keys are trusted before a refresh. Default 10 min. */
      cacheMaxAgeMs?: number;
      /** Fetch timeout. Default 5 s. */
      timeoutMs?: number;
    }
  | { /** Path of a JWKS JSON file, read once at start. */ jwksFile: string }
  | { /** An in-memory JWKS. */ jwks: JSONWebKeySet }
  | {
      /** A public key: PEM (SPKI) text or a KeyObject/webcrypto.CryptoKey. */
      publicKey: string | KeyObject | webcrypto.CryptoKey;
      /** The one algorithm this key is used with, e.g. `ES256`. */
      algorithm: string;
    }
  | {
      /** A shared secret for HS256. Refused unless `allowHs256` is true. */
      hmacSecret: string | Uint8Array;
      /** HS256 must be enabled on purpose: anyone who can verify can also mint. */
      allowHs256: true;
    };

export interface VerifierOptions {
  /** Accepted `iss` value(s). */
  issuer: string | readonly string[];
  /**
   * This server's resource URI (RFC 8707). The token's `aud` must be exactly this value, or a list
   * holding only it (see `allowAudienceList`).
   */
  audience: string;
  /**
   * Accept an `aud` list naming other resources besides this one. Default false: such a token is
   * refused (`AUTH_AUDIENCE`), because it could be replayed at every resource it lists (RFC 8707
   * resource indicators give each token one audience).
   */
  allowAudienceList?: boolean;
  /** The verification keys. */
  keys: KeySource;
  /** Algorithm allow-list. Default: the asymmetric algorithms, or HS256 for an HMAC secret. `none` is never allowed. */
  algorithms?: readonly string[];
  /** Largest `exp - iat` accepted, in seconds. Default 3600. */
  maxLifetimeSeconds?: number;
  /** Clock skew allowed for `exp`, `nbf` and `iat`, in seconds. Default 30, at most 300. */
  clockToleranceSeconds?: number;
  /** Name of the tenant claim. Default `tenant_id`. */
  tenantClaim?: string;
  /** Syntax a tenant id must match. Default: lowercase alphanumerics, `_`, `-`, 1–63 chars. */
  tenantIdPattern?: RegExp;
  /** Tokens longer than this many bytes are refused before parsing. Default 8192. */
  maxTokenBytes?: number;
  /** Revoked token ids and halted tenants. */
  revocations?: RevocationStore;
  /** Refuse tokens that have no `jti` (so every token is revocable). Default false. */
  requireJti?: boolean;
  /**
   * Verified tokens remembered (by SHA-256 of the token) so a session's repeated requests skip the
   * signature check. Expiry, revocation and halt are still checked on every request. Default 1,000;
   * 0 turns the cache off.
   */
  cacheSize?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
}

export interface TokenVerifier {
  /** Verifies a bearer token and returns the Tenant principal, or throws a TenantScopeError (AUTH_*, TENANT_HALTED). */
  verify(token: string): Promise<Tenant>;
  /** The configured audience (this server's resource URI). */
  readonly audience: string;
  /** The configured issuers. */
  readonly issuers: readonly string[];
}

/** Syntax of one tool name or glob in a credential's tool list. */
export const TOOL_PATTERN = /^[A-Za-z0-9_.*-]{1,128}$/;

/** Creates a verifier. Throws INVALID_CONFIG for an unsafe or incomplete configuration. */
export async function createVerifier(options: VerifierOptions): Promise<TokenVerifier> {
  const issuers = typeof options.issuer === 'string' ? [options.issuer] : [...options.issuer];
  if (issuers.length === 0 || issuers.some((i) => typeof i !== 'string' || i.length === 0)) {
    throw new TenantScopeError('INVALID_CONFIG', 'issuer must be a non-empty string or list of strings');
  }
  if (typeof options.audience !== 'string' || options.audience.length === 0) {
    throw new TenantScopeError('INVALID_CONFIG', 'audience (this server resource URI) is required');
  }
  const maxLifetime = options.maxLifetimeSeconds ?? 3600;
  if (!Number.isFinite(maxLifetime) || maxLifetime <= 0 || maxLifetime > 86_400) {
    throw new TenantScopeError('INVALID_CONFIG', 'maxLifetimeSeconds must be in (0, 86400]');
  }
  const tolerance = options.clockToleranceSeconds ?? 30;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 300) {
    throw new TenantScopeError('INVALID_CONFIG', 'clockToleranceSeconds must be in [0, 300]');
  }
  const maxBytes = options.maxTokenBytes ?? 8192;
  const tenantClaim = options.tenantClaim ?? 'tenant_id';
  const tenantPattern = options.tenantIdPattern ?? DEFAULT_TENANT_ID_PATTERN;
  const now = options.now ?? Date.now;

  const { getKey, defaultAlgs, family } = await resolveKeys(options.keys);
  const algorithms = [...(options.algorithms ?? defaultAlgs)];
  for (const alg of algorithms) {
    if (alg.toLowerCase() === 'none') throw new TenantScopeError('INVALID_CONFIG', 'alg none is never allowed');
    const allowed = family === 'hmac' ? HMAC_ALGS : ASYMMETRIC_ALGS;
    if (!allowed.includes(alg)) {
      throw new TenantScopeError('INVALID_CONFIG', `algorithm ${alg} does not fit the ${family} key source`);
    }
  }

  const cacheSize = options.cacheSize ?? 1000;
  const cache = cacheSize > 0 ? new BoundedLru<string, Tenant>(cacheSize) : undefined;

  async function checkState(tenant: Tenant): Promise<void> {
    if (!options.revocations) return;
    const details = { tenantHint: tenant.id, subjectHint: tenant.subject };
    if (tenant.tokenId !== undefined && (await options.revocations.isTokenRevoked(tenant.tokenId))) {
      throw new TenantScopeError('AUTH_REVOKED', 'token was revoked', { details });
    }
    if (await options.revocations.isTenantHalted(tenant.id)) {
      throw new TenantScopeError('TENANT_HALTED', 'tenant is halted', { details });
    }
  }

  async function verify(token: string): Promise<Tenant> {
    if (typeof token !== 'string' || token.length === 0) {
      throw new TenantScopeError('AUTH_MISSING', 'no bearer token');
    }
    if (Buffer.byteLength(token, 'utf8') > maxBytes) {
      throw new TenantScopeError('AUTH_TOO_LARGE', `token is larger than ${maxBytes} bytes`);
    }
    const key = cache ? createHash('sha256').update(token).digest('base64url') : '';
    const hit = cache?.get(key);
    if (hit) {
      if (hit.expiresAt.getTime() + tolerance * 1000 <= now()) {
        cache?.delete(key);
        throw new TenantScopeError('AUTH_EXPIRED', 'token has expired', {
          details: { tenantHint: hit.id, subjectHint: hit.subject },
        });
      }
      await checkState(hit);
      return hit;
    }
    const tenant = await verifyFully(token);
    await checkState(tenant);
    cache?.set(key, tenant);
    return tenant;
  }

  async function verifyFully(token: string): Promise<Tenant> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (cause) {
      throw new TenantScopeError('AUTH_MALFORMED', 'token is not a compact JWS', { cause });
    }
    if (typeof alg !== 'string' || !algorithms.includes(alg)) {
      throw new TenantScopeError('AUTH_ALGORITHM', 'token algorithm is not allowed');
    }
    // Before anything reads a claim: JSON.parse would keep the last of two tenant_id members.
    assertNoDuplicateMembers(token);
    let payload: JWTPayload;
    try {
      const currentDate = new Date(now());
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: issuers,
        audience: options.audience,
        algorithms,
        clockTolerance: tolerance,
        currentDate,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub'],
      }));
    } catch (cause) {
      throw mapJoseError(cause, tenantClaim, tenantPattern);
    }
    const hints = hintsOf(payload, tenantClaim, tenantPattern);
    const fail = (code: string, message: string) => new TenantScopeError(code, message, { details: hints });

    if (Array.isArray(payload.aud) && payload.aud.length !== 1 && options.allowAudienceList !== true) {
      throw fail('AUTH_AUDIENCE', 'token names more than one audience');
    }
    const exp = payload.exp as number;
    const iat = payload.iat as number;
    const nowSec = now() / 1000;
    if (!Number.isFinite(iat) || iat > nowSec + tolerance) throw fail('AUTH_CLAIM_INVALID', 'iat is in the future');
    if (exp - iat > maxLifetime) {
      throw fail('AUTH_LIFETIME', `token lifetime exceeds ${maxLifetime} s`);
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
      throw fail('AUTH_CLAIM_INVALID', 'sub must be a non-empty string of at most 256 characters');
    }
    const tenantId = payload[tenantClaim];
    if (tenantId === undefined) throw fail('AUTH_CLAIM_MISSING', `missing ${tenantClaim} claim`);
    if (typeof tenantId !== 'string' || !tenantPattern.test(tenantId)) {
      throw fail('AUTH_TENANT_INVALID', `${tenantClaim} claim has invalid syntax`);
    }
    const allowedTools = parseAllowedTools(payload.allowed_tools, fail);
    const resourcePrefix = payload.resource_prefix;
    if (resourcePrefix !== undefined && (typeof resourcePrefix !== 'string' || resourcePrefix.length > 512)) {
      throw fail('AUTH_CLAIM_INVALID', 'resource_prefix must be a string of at most 512 characters');
    }
    const jti = payload.jti;
    if (jti !== undefined && (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)) {
      throw fail('AUTH_CLAIM_INVALID', 'jti must be a non-empty string of at most 256 characters');
    }
    if (options.requireJti && jti === undefined) throw fail('AUTH_CLAIM_MISSING', 'missing jti claim');
    return mintTenant({
      id: tenantId,
      subject: payload.sub,
      allowedTools,
      resourcePrefix: resourcePrefix as string | undefined,
      tokenId: jti as string | undefined,
      issuer: payload.iss as string,
      expiresAt: new Date(exp * 1000),
    });
  }

  return { verify, audience: options.audience, issuers };
}

function parseAllowedTools(
  claim: unknown,
  fail: (code: string, message: string) => TenantScopeError,
): readonly string[] | undefined {
  if (claim === undefined) return undefined;
  if (
    !Array.isArray(claim) ||
    claim.length > 1024 ||
    !claim.every((t) => typeof t === 'string' && TOOL_PATTERN.test(t))
  ) {
    throw fail('AUTH_CLAIM_INVALID', 'allowed_tools must be a list of tool names or globs');
  }
  return claim as string[];
}

/**
 * Who a refused token was for, taken only from a payload whose signature verified, to attribute
 * the failure in the audit trail (never to authorise). Undefined when there is nothing safe to say.
 */
function hintsOf(
  payload: JWTPayload | undefined,
  claim: string,
  pattern: RegExp,
): { tenantHint?: string; subjectHint?: string } | undefined {
  const tenant = tenantHint(payload, claim, pattern);
  if (!tenant) return undefined;
  const sub = payload?.sub;
  return typeof sub === 'string' && sub.length > 0 && sub.length <= 256
    ? { tenantHint: tenant, subjectHint: sub }
    : { tenantHint: tenant };
}

function tenantHint(payload: JWTPayload | undefined, claim: string, pattern: RegExp): string | undefined {
  const v = payload?.[claim];
  return typeof v === 'string' && pattern.test(v) ? v : undefined;
}

function mapJoseError(cause: unknown, tenantClaim: string, pattern: RegExp): TenantScopeError {
  if (cause instanceof TenantScopeError) return cause;
  // Claim errors are raised after the signature was verified, so their payload is authentic and
  // the tenant can be used to attribute the failure in the audit trail (never to authorise).
  const payload =
    cause instanceof joseErrors.JWTClaimValidationFailed || cause instanceof joseErrors.JWTExpired
      ? cause.payload
      : undefined;
  const hints = hintsOf(payload, tenantClaim, pattern);
  const make = (code: string, message: string) => new TenantScopeError(code, message, { cause, details: hints });
  if (cause instanceof joseErrors.JWTExpired) return make('AUTH_EXPIRED', 'token has expired');
  if (cause instanceof joseErrors.JWTClaimValidationFailed) {
    if (cause.reason === 'missing') return make('AUTH_CLAIM_MISSING', `missing ${cause.claim} claim`);
    switch (cause.claim) {
      case 'nbf':
        return make('AUTH_NOT_YET_VALID', 'token is not valid yet');
      case 'aud':
        return make('AUTH_AUDIENCE', 'token audience is not this server');
      case 'iss':
        return make('AUTH_ISSUER', 'token issuer is not trusted');
      default:
        return make('AUTH_CLAIM_INVALID', `invalid ${cause.claim} claim`);
    }
  }
  if (cause instanceof joseErrors.JWSSignatureVerificationFailed)
    return make('AUTH_SIGNATURE', 'token signature is invalid');
  if (cause instanceof joseErrors.JWKSNoMatchingKey || cause instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return make('AUTH_KEY_UNKNOWN', 'no trusted key matches the token');
  }
  if (cause instanceof joseErrors.JWKSTimeout || cause instanceof joseErrors.JWKSInvalid) {
    return make('AUTH_KEYS_UNAVAILABLE', 'verification keys are unavailable');
  }
  if (cause instanceof joseErrors.JOSEAlgNotAllowed || cause instanceof joseErrors.JOSENotSupported) {
    return make('AUTH_ALGORITHM', 'token algorithm is not allowed');
  }
  if (cause instanceof joseErrors.JWSInvalid || cause instanceof joseErrors.JWTInvalid) {
    return make('AUTH_MALFORMED', 'token is malformed');
  }
  return make('AUTH_KEYS_UNAVAILABLE', 'token could not be verified');
}

async function resolveKeys(
  source: KeySource,
): Promise<{ getKey: JWTVerifyGetKey; defaultAlgs: string[]; family: 'asymmetric' | 'hmac' }> {
  if (!source || typeof source !== 'object') {
    throw new TenantScopeError('INVALID_CONFIG', 'keys: one key source is required');
  }
  const kinds = ['jwksUrl', 'jwksFile', 'jwks', 'publicKey', 'hmacSecret'].filter((k) => k in source);
  if (kinds.length !== 1) {
    throw new TenantScopeError(
      'INVALID_CONFIG',
      'keys: give exactly one of jwksUrl, jwksFile, jwks, publicKey, hmacSecret',
    );
  }
  const asym = { defaultAlgs: ['RS256', 'PS256', 'ES256', 'EdDSA'], family: 'asymmetric' as const };
  if ('jwksUrl' in source) {
    const url = new URL(source.jwksUrl);
    return {
      getKey: createRemoteJWKSet(url, {
        cooldownDuration: source.cooldownMs ?? 30_000,
        cacheMaxAge: source.cacheMaxAgeMs ?? 600_000,
        timeoutDuration: source.timeoutMs ?? 5_000,
      }),
      ...asym,
    };
  }
  if ('jwksFile' in source) {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(await readFile(source.jwksFile, 'utf8')) as JSONWebKeySet;
    } catch (cause) {
      throw new TenantScopeError('INVALID_CONFIG', 'keys.jwksFile could not be read as JSON', { cause });
    }
    return { getKey: localSet(jwks), ...asym };
  }
  if ('jwks' in source) return { getKey: localSet(source.jwks), ...asym };
  if ('publicKey' in source) {
    const alg = source.algorithm;
    if (!ASYMMETRIC_ALGS.includes(alg)) {
      throw new TenantScopeError('INVALID_CONFIG', `keys.algorithm ${alg} is not an asymmetric algorithm`);
    }
    const key = typeof source.publicKey === 'string' ? await importSPKI(source.publicKey, alg) : source.publicKey;
    if ((key as KeyObject).type === 'secret') {
      throw new TenantScopeError('INVALID_CONFIG', 'keys.publicKey must be a public key');
    }
    return { getKey: async () => key as webcrypto.CryptoKey, defaultAlgs: [alg], family: 'asymmetric' };
  }
  if (source.allowHs256 !== true) {
    throw new TenantScopeError('INVALID_CONFIG', 'HS256 must be enabled explicitly with allowHs256: true');
  }
  const secret =
    typeof source.hmacSecret === 'string' ? Buffer.from(source.hmacSecret, 'utf8') : Buffer.from(source.hmacSecret);
  if (secret.length < 32) throw new TenantScopeError('INVALID_CONFIG', 'hmacSecret must be at least 32 bytes');
  const key = createSecretKey(secret);
  return { getKey: async () => key, defaultAlgs: HMAC_ALGS, family: 'hmac' };
}

function localSet(jwks: JSONWebKeySet): JWTVerifyGetKey {
  if (!jwks || !Array.isArray(jwks.keys)) throw new TenantScopeError('INVALID_CONFIG', 'JWKS has no keys array');
  // Symmetric keys in a JWKS would reopen HS/RS confusion: refuse them.
  if (jwks.keys.some((k) => k.kty === 'oct')) {
    throw new TenantScopeError('INVALID_CONFIG', 'JWKS must not contain symmetric (oct) keys');
  }
  return createLocalJWKSet(jwks);
}
