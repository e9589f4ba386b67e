import { randomUUID } from 'node:crypto';
import { type JSONWebKeySet, type JWTPayload, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { type Tenant, type TokenVerifier, type VerifierOptions, createVerifier } from '@tenantscope/core';

export interface TestIssuerOptions {
  /** `iss` of minted tokens. Default `https://issuer.test`. */
  issuer?: string;
  /** Default `aud` of minted tokens (the server's resource URI). Default `http://localhost/mcp`. */
  audience?: string;
  /** Signing algorithm. Default ES256. */
  alg?: 'ES256' | 'RS256' | 'EdDSA';
  /** Key id. Default a random one. */
  kid?: string;
}

export interface MintOptions {
  /** Tenant claim value. */
  tenant?: string;
  /** `sub`. Default `agent-<tenant>`. */
  subject?: string;
  /** `allowed_tools` claim. */
  tools?: string[];
  /** Lifetime in seconds (exp - iat). Default 900. */
  ttlSeconds?: number;
  /** Override `iat` (seconds). Default now. */
  iat?: number;
  /** Extra or overriding claims (set a claim to `undefined` to drop it). */
  claims?: Record<string, unknown>;
  /** Override the audience. */
  audience?: string;
  /** Override the protected header (e.g. a different kid). */
  header?: Record<string, unknown>;
}

export interface TestIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly alg: string;
  readonly kid: string;
  /** Public keys, as a JWKS. */
  readonly jwks: JSONWebKeySet;
  /** Signs a token for tests. */
  mint(options?: MintOptions): Promise<string>;
  /** A verifier trusting this issuer. */
  verifier(options?: Partial<VerifierOptions>): Promise<TokenVerifier>;
  /**
   * A verified Tenant for adapter tests: mints a token and runs it through a real verifier, so
   * the only way to a Tenant stays the verifier.
   */
  tenant(id: string, options?: MintOptions): Promise<Tenant>;
}

/** Creates a throwaway signing key and issuer for tests and the dev-mode example server. */
export async function createTestIssuer(options: TestIssuerOptions = {}): Promise<TestIssuer> {
  const alg = options.alg ?? 'ES256';
  const issuer = options.issuer ?? 'https://issuer.test';
  const audience = options.audience ?? 'http://localhost/mcp';
  const kid = options.kid ?? randomUUID();
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const jwks: JSONWebKeySet = { keys: [jwk] };
  let cached: TokenVerifier | undefined;

  async function mint(m: MintOptions = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const iat = m.iat ?? now;
    const payload: JWTPayload = {
      iss: issuer,
      aud: m.audience ?? audience,
      sub: m.subject ?? `agent-${m.tenant ?? 'anon'}`,
      iat,
      exp: iat + (m.ttlSeconds ?? 900),
      jti: randomUUID(),
    };
    if (m.tenant !== undefined) payload.tenant_id = m.tenant;
    if (m.tools !== undefined) payload.allowed_tools = m.tools;
    for (const [k, v] of Object.entries(m.claims ?? {})) {
      if (v === undefined) delete payload[k];
      else payload[k] = v;
    }
    return new SignJWT(payload).setProtectedHeader({ alg, kid, typ: 'JWT', ...m.header }).sign(privateKey);
  }

  async function verifier(o: Partial<VerifierOptions> = {}): Promise<TokenVerifier> {
    return createVerifier({ issuer, audience, keys: { jwks }, ...o });
  }

  return {
    issuer,
    audience,
    alg,
    kid,
    jwks,
    mint,
    verifier,
    async tenant(id, m = {}) {
      cached ??= await verifier();
      return cached.verify(await mint({ ...m, tenant: id }));
    },
  };
}
