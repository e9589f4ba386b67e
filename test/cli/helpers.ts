import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeKeyPair } from '@tenantscope/cli';
import type { JSONWebKeySet } from 'jose';
import { inject } from 'vitest';

export const root = join(import.meta.dirname, '..', '..');

/** An ES256 key pair, written by the CLI's own keygen: the private JWK for the check, the JWKS for the server. */
export async function makeKeys(
  dir: string,
  kid = 'check-key',
): Promise<{ jwks: JSONWebKeySet; privateKey: string; jwksFile: string }> {
  const files = await writeKeyPair(dir, 'ES256', kid);
  return { jwks: JSON.parse(await readFile(files.jwks, 'utf8')), privateKey: files.privateKey, jwksFile: files.jwks };
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real bin in a child process, the way a user does. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['packages/cli/src/bin.ts', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tenantscope ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function writeJson(path: string, value: unknown): Promise<string> {
  await writeFile(path, JSON.stringify(value, null, 2));
  return path;
}

/** An Ed25519 key pair for DSAR configs: `signing.pem` (dsar.signingKey) and `signing.pub.pem` in `dir`. */
export async function writeSigningKey(dir: string): Promise<{ privateKey: string; publicKey: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const files = { privateKey: join(dir, 'signing.pem'), publicKey: join(dir, 'signing.pub.pem') };
  await writeFile(files.privateKey, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(files.publicKey, publicKey.export({ type: 'spki', format: 'pem' }));
  return files;
}

/** The events of one tenant's JSONL audit stream under `auditDir` that `keep` selects, oldest first ([] if none). */
export async function auditEvents(
  auditDir: string,
  tenant: string,
  keep: (e: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let files: string[] = [];
  try {
    files = (await readdir(join(auditDir, tenant))).sort();
  } catch {
    return out;
  }
  for (const f of files) {
    for (const line of (await readFile(join(auditDir, tenant, f), 'utf8')).split('\n').filter(Boolean)) {
      const e = JSON.parse(line).event as Record<string, unknown>;
      if (keep(e)) out.push(e);
    }
  }
  return out;
}

/** One call to the run's Qdrant (double or QDRANT_URL) over raw REST; throws on a non-2xx answer. */
export async function qdrantRest(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const key = inject('qdrantApiKey');
  const r = await fetch(`${inject('qdrantUrl')}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(key ? { 'api-key': key } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`qdrant ${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}
