import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { cliError } from '../errors.ts';

const ident = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase SQL identifier');
const tenantId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a tenant id: lowercase letters, digits, _ and -');

/** The config's `keys` section: where `tenantscope keys` keeps API keys (the server reads the same table). */
export const keysSectionSchema = z.strictObject({
  postgres: z.strictObject({
    /** Connection URL of the database the server's `PostgresApiKeyStore` uses, or the env var holding it. */
    url: z.string().min(1).optional(),
    urlEnv: z.string().min(1).optional(),
  }),
  /** Schema of the `api_keys` table. Default `tenantscope_state` (the server's default too). */
  schema: ident.default('tenantscope_state'),
  /**
   * Also revoke in the replica-state RevocationStore in this schema (`<schema>.revoked_tokens`,
   * `PostgresRevocationStore`), so running replicas refuse the key at once via LISTEN/NOTIFY.
   */
  revocationSchema: ident.optional(),
  /** Environment variable holding the pepper (32+ characters); the server must use the same one. */
  pepperEnv: z.string().min(1).optional(),
  /** The tenants keys may be created for: ids, or a JSON file whose `tenants` object is keyed by id. */
  tenants: z.union([z.array(tenantId).min(1), z.strictObject({ file: z.string().min(1) })]).optional(),
  /** Expiry of a key created without `--expires`: `<n>m|h|d` or `never`. Default `90d`. */
  defaultExpires: z.string().default('90d'),
});

export type KeysConfig = z.infer<typeof keysSectionSchema>;

/** The `keys` section, or CLI_CONFIG_INVALID naming the field. */
export function keysSection(config: { keys?: KeysConfig }, source: string): KeysConfig {
  if (!config.keys) throw cliError('CLI_CONFIG_INVALID', `${source}: keys: missing (the database of the key store)`);
  const pg = config.keys.postgres;
  if (!pg.url === !pg.urlEnv)
    throw cliError('CLI_CONFIG_INVALID', `${source}: keys.postgres: give exactly one of url, urlEnv`);
  return config.keys;
}

export function keysUrl(cfg: KeysConfig): string {
  const url = cfg.postgres.url ?? process.env[cfg.postgres.urlEnv as string];
  if (!url) throw cliError('CLI_CONFIG_INVALID', `keys.postgres.urlEnv: ${cfg.postgres.urlEnv} is not set`);
  return url;
}

export function keysPepper(cfg: KeysConfig): string | undefined {
  if (!cfg.pepperEnv) return undefined;
  const pepper = process.env[cfg.pepperEnv];
  if (!pepper || pepper.length < 32) {
    throw cliError('CLI_CONFIG_INVALID', `keys.pepperEnv: ${cfg.pepperEnv} must hold 32 or more characters`);
  }
  return pepper;
}

/** Refuses (CLI_UNKNOWN_TENANT) a tenant outside `keys.tenants`, when the section lists them. */
export async function knownKeyTenant(cfg: KeysConfig, tenant: string, base: string): Promise<void> {
  if (!cfg.tenants) return;
  let ids: string[];
  if (Array.isArray(cfg.tenants)) ids = cfg.tenants;
  else {
    try {
      const parsed = JSON.parse(await readFile(resolve(base, cfg.tenants.file), 'utf8')) as { tenants?: object };
      ids = Object.keys(parsed.tenants ?? {});
    } catch (cause) {
      throw cliError('CLI_CONFIG_INVALID', `keys.tenants.file: ${cfg.tenants.file} cannot be read`, { cause });
    }
  }
  if (!ids.includes(tenant)) {
    throw cliError('CLI_UNKNOWN_TENANT', `unknown tenant ${JSON.stringify(tenant.slice(0, 64))} (not in keys.tenants)`);
  }
}

/** `30d`, `12h`, `45m` or an ISO date: the expiry; `never`: none. CLI_USAGE otherwise. */
export function parseExpiry(text: string, now = Date.now()): Date | undefined {
  if (text === 'never') return undefined;
  const m = /^([1-9][0-9]{0,5})([mhd])$/.exec(text);
  if (m) return new Date(now + Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd']);
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isFinite(at) && at > now) return new Date(at);
  throw cliError('CLI_USAGE', '--expires takes <n>m, <n>h, <n>d, a future ISO date, or never');
}
