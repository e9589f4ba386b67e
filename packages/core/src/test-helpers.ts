/** Helpers for core's unit tests (not built into dist): real verified tenants from signed tokens. */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { AuditEvent, AuditSink } from './audit.ts';
import { AuditWriter } from './audit-writer.ts';
import type { Tenant } from './tenant.ts';
import { createVerifier, type TokenVerifier } from './verifier.ts';

export const TEST_ISSUER = 'https://issuer.test';
export const TEST_AUDIENCE = 'http://127.0.0.1:3000/mcp';

export interface TestTenants {
  readonly verifier: TokenVerifier;
  /** A signed token for that tenant (subject `agent-1` unless given; extra claims such as `allowed_tools`). */
  token(tenantId: string, claims?: Record<string, unknown>): Promise<string>;
  /** The Tenant the verifier makes of such a token. */
  tenant(tenantId: string, claims?: Record<string, unknown>): Promise<Tenant>;
}

/** A fresh ES256 key, a verifier trusting it, and tenants made by verifying real tokens. */
export async function testTenants(): Promise<TestTenants> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const verifier = await createVerifier({
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    keys: { jwks: { keys: [jwk] } },
  });
  const token = (tenantId: string, claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ tenant_id: tenantId, sub: 'agent-1', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(privateKey);
  };
  return { verifier, token, tenant: async (id, claims) => verifier.verify(await token(id, claims)) };
}

/** A sink that keeps events, and fails every write while `failing` is set (a sink that is down). */
export class TestAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  failing = false;
  async write(event: AuditEvent): Promise<void> {
    if (this.failing) throw new Error('disk full');
    this.events.push(structuredClone(event));
  }
}

/** An AuditWriter over `sink` that fails closed, and the diagnostics it logged. */
export function testWriter(sink: AuditSink, onFailure: 'deny' | 'allow' = 'deny') {
  const logged: Record<string, unknown>[] = [];
  const writer = new AuditWriter(sink, onFailure, (level, msg, err, fields = {}) =>
    logged.push({ level, msg, error: String((err as Error)?.message ?? err), ...fields }),
  );
  return { writer, logged };
}
