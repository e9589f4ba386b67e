import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';

export const root = join(import.meta.dirname, '..', '..');

/** An ES256 key pair: the private JWK written for the CLI, the public JWKS for the server. */
export async function makeKeys(
  dir: string,
  kid = 'check-key',
): Promise<{ jwks: JSONWebKeySet; privateKey: string; jwksFile: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  const privatePath = join(dir, 'private.jwk.json');
  const jwksFile = join(dir, 'jwks.json');
  await writeFile(privatePath, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: 'ES256' }));
  await writeFile(jwksFile, JSON.stringify(jwks));
  return { jwks, privateKey: privatePath, jwksFile };
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
