import { execFile } from 'node:child_process';
import { createHmac, createPrivateKey, createPublicKey, type KeyObject, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CheckConfig } from '../config.ts';
import { cliError } from '../errors.ts';

type Signing = NonNullable<CheckConfig['auth']>;

/** Mints tokens with the key the target trusts, including the bad ones the token checks send. */
export interface Minter {
  readonly alg: string;
  /** A good token for `tenant` (with optional claim and header overrides; `undefined` drops a claim). */
  mint(
    tenant: string,
    o?: { subject?: string; claims?: Record<string, unknown>; header?: Record<string, unknown> },
  ): Promise<string>;
  /** Same claims, signed by a fresh key of the same algorithm and kid. */
  mintWithForeignKey(tenant: string): Promise<string>;
  /** HS256 over the token, keyed with the public key's PEM text (the classic HS/RS confusion). */
  mintHsConfusion(tenant: string): Promise<string>;
  /** The claims a good token for `tenant` carries (times relative to now). */
  claims(tenant: string, subject?: string): Record<string, unknown>;
}

function algFor(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return 'RS256';
  if (type === 'rsa-pss') return 'PS256';
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return 'ES256';
    if (curve === 'secp384r1' || curve === 'P-384') return 'ES384';
    if (curve === 'secp521r1' || curve === 'P-521') return 'ES512';
  }
  throw cliError('CLI_KEY_INVALID', `check.auth.signingKey: unsupported key type ${type ?? 'unknown'}`);
}

/** Loads the signing key (PEM or JWK) and returns a minter. */
export async function createMinter(auth: Signing, defaultAudience: string): Promise<Minter> {
  let text: string;
  try {
    text = await readFile(auth.signingKey, 'utf8');
  } catch (cause) {
    throw cliError('CLI_KEY_INVALID', `check.auth.signingKey: cannot read ${auth.signingKey}`, { cause });
  }
  let key: KeyObject;
  let kid = auth.kid;
  try {
    if (text.trimStart().startsWith('{')) {
      const jwk = JSON.parse(text) as { kid?: string; d?: string };
      if (!jwk.d) throw new Error('the JWK has no private part (d)');
      kid ??= jwk.kid;
      key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } else key = createPrivateKey(text);
  } catch (cause) {
    throw cliError('CLI_KEY_INVALID', `check.auth.signingKey: not a private key (${(cause as Error).message})`, {
      cause,
    });
  }
  const alg = auth.algorithm ?? algFor(key);
  const publicPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  const audience = auth.audience ?? defaultAudience;
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) };

  function claims(tenant: string, subject?: string): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: auth.issuer,
      aud: audience,
      sub: subject ?? `tenantscope-check-${tenant}`,
      iat: now,
      exp: now + auth.ttlSeconds,
      jti: randomUUID(),
      [auth.tenantClaim]: tenant,
    };
  }
  function merge(base: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
    const out = { ...base };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete out[k];
      else out[k] = v;
    }
    return out;
  }
  return {
    alg,
    claims,
    mint: (tenant, o = {}) =>
      new SignJWT(merge(claims(tenant, o.subject), o.claims))
        .setProtectedHeader({ ...header, ...o.header } as typeof header)
        .sign(key),
    async mintWithForeignKey(tenant) {
      const { privateKey } = await generateKeyPair(alg, { extractable: false });
      return new SignJWT(claims(tenant)).setProtectedHeader(header).sign(privateKey);
    },
    async mintHsConfusion(tenant) {
      return hmacJws({ ...header, alg: 'HS256' }, claims(tenant), Buffer.from(publicPem));
    },
  };
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function hmacJws(header: Record<string, unknown>, payload: Record<string, unknown>, secret: Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Splits a compact JWS; null when it is not one. */
export function decodeJws(
  token: string,
): { header: Record<string, unknown>; payload: Record<string, unknown>; signature: string } | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')),
      payload: JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')),
      signature: parts[2] as string,
    };
  } catch {
    return null;
  }
}

/** A token with the same header and signature but a changed payload (a forged claim). */
export function tamperPayload(token: string, change: (p: Record<string, unknown>) => void): string | null {
  const d = decodeJws(token);
  if (!d) return null;
  change(d.payload);
  return `${token.split('.')[0]}.${b64(d.payload)}.${d.signature}`;
}

/** The same token with one signature byte flipped. */
export function flipSignature(token: string): string | null {
  const d = decodeJws(token);
  if (!d) return null;
  const sig = Buffer.from(d.signature, 'base64url');
  if (sig.length === 0) return null;
  sig[sig.length >> 1] = (sig[sig.length >> 1] as number) ^ 0x5a;
  const [h, p] = token.split('.');
  return `${h}.${p}.${sig.toString('base64url')}`;
}

/** The same claims with `alg: none` and no signature. */
export function algNone(token: string): string | null {
  const d = decodeJws(token);
  if (!d) return null;
  return `${b64({ ...d.header, alg: 'none' })}.${token.split('.')[1]}.`;
}

/** Runs a token command; stdout (trimmed, at most 16 KiB) is the token. */
export function runTokenCommand(command: string, tenant: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      '/bin/sh',
      ['-c', command],
      { timeout: timeoutMs, maxBuffer: 16 * 1024, env: { ...process.env, TENANTSCOPE_TENANT: tenant } },
      (err, stdout) => {
        const token = String(stdout).trim();
        if (err || !token || /\s/.test(token)) {
          reject(
            cliError(
              'CLI_TOKEN_COMMAND_FAILED',
              `check.tenants.${tenant}.tokenCommand: ${err ? err.message.split('\n')[0] : 'printed no single token'}`,
            ),
          );
        } else resolve(token);
      },
    );
  });
}

/** Writes a fresh key pair: `private.jwk.json` (mode 0600, for the check) and `jwks.json` (for the server). */
export async function writeKeyPair(
  dir: string,
  alg: string,
  kid: string,
): Promise<{ privateKey: string; jwks: string }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  await mkdir(dir, { recursive: true });
  const priv = join(dir, 'private.jwk.json');
  const pub = join(dir, 'jwks.json');
  await writeFile(priv, `${JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg })}\n`, { mode: 0o600 });
  await writeFile(pub, `${JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] })}\n`);
  return { privateKey: priv, jwks: pub };
}
