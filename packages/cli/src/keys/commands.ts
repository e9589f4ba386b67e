import { dirname, resolve } from 'node:path';
import type { ApiKeyRecord } from '@tenantscope/core';
import type { PostgresApiKeyStore, pg } from '@tenantscope/postgres';
import type { Command } from 'commander';
import type { Io } from '../cli.ts';
import { EXIT } from '../exit.ts';
import type { KeysConfig } from './config.ts';

/** The commands' implementation, imported when one of them runs (never for `--help`). */
async function impl() {
  const [core, postgres, config, errors, keysConfig] = await Promise.all([
    import('@tenantscope/core'),
    import('@tenantscope/postgres'),
    import('../config.ts'),
    import('../errors.ts'),
    import('./config.ts'),
  ]);
  return { ...core, ...postgres, ...config, ...errors, ...keysConfig };
}

interface Flags {
  config?: string;
  json?: boolean;
}

async function load(flags: Flags): Promise<{ cfg: KeysConfig; base: string }> {
  const { cliError, keysSection, parseConfig, readConfigValue } = await impl();
  if (!flags.config) throw cliError('CLI_USAGE', '--config <file> is required (its keys section names the database)');
  const cfg = keysSection(parseConfig(await readConfigValue(flags.config), flags.config), flags.config);
  return { cfg, base: dirname(resolve(flags.config)) };
}

/** Opens the key store (creating its table if needed), runs `fn`, closes the pool. */
async function withStore<T>(
  cfg: KeysConfig,
  fn: (store: PostgresApiKeyStore, pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const { cliError, keysUrl, pg, PostgresApiKeyStore } = await impl();
  const pool = new pg.Pool({ connectionString: keysUrl(cfg), max: 2 });
  pool.on('error', () => {});
  try {
    const store = new PostgresApiKeyStore(pool, { schema: cfg.schema });
    try {
      await store.migrate();
    } catch (cause) {
      throw cliError('CLI_STORE_FAILED', `keys: the key table in schema ${cfg.schema} could not be created or read`, {
        cause,
      });
    }
    return await fn(store, pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** What `list` and `--json` show of a record: never the hash. */
function view(r: ApiKeyRecord, now = Date.now()) {
  const status = r.revokedAt ? 'revoked' : r.expiresAt && r.expiresAt.getTime() <= now ? 'expired' : 'active';
  return {
    id: r.id,
    tenant: r.tenantId,
    tools: r.tools ?? null,
    label: r.label ?? null,
    created_at: r.createdAt.toISOString(),
    expires_at: r.expiresAt?.toISOString() ?? null,
    last_used_at: r.lastUsedAt?.toISOString() ?? null,
    revoked_at: r.revokedAt?.toISOString() ?? null,
    status,
  };
}

function table(rows: ReturnType<typeof view>[]): string {
  if (rows.length === 0) return 'no keys\n';
  const cells = [
    ['ID', 'TENANT', 'STATUS', 'TOOLS', 'EXPIRES', 'LAST USED', 'LABEL'],
    ...rows.map((r) => [
      r.id,
      r.tenant,
      r.status,
      r.tools ? r.tools.join(',') : '(all)',
      r.expires_at ?? 'never',
      r.last_used_at ?? '-',
      r.label ?? '',
    ]),
  ];
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((c) => (c[i] ?? '').length))) ?? [];
  return `${cells
    .map((c) =>
      c
        .map((v, i) => v.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** Adds `keys create|list|revoke`. */
export function addKeysCommands(root: Command, io: Io, setExit: (code: number) => void): void {
  const keys = root.command('keys').description('API keys (tsk_<tenant>_…): a credential beside JWTs, kept as hashes');
  keys
    .command('create')
    .description('create a key for a tenant and print it ONCE (only its hash is stored)')
    .argument('<tenant>', 'tenant id')
    .option('--tools <list>', 'comma-separated tool names or globs the key may call (default: the tenant policy)')
    .option('--expires <when>', '<n>m, <n>h, <n>d, an ISO date, or never (default: keys.defaultExpires, 90d)')
    .option('--label <text>', 'a note for operators: who or what the key is for')
    .option('-c, --config <file>', 'config file with a keys section')
    .option('--json', 'print the key and its record as JSON')
    .action(async (tenant: string, flags: Flags & { tools?: string; expires?: string; label?: string }) => {
      const { cliError, createApiKey, keysPepper, knownKeyTenant, parseExpiry } = await impl();
      const { cfg, base } = await load(flags);
      await knownKeyTenant(cfg, tenant, base);
      const expiresAt = parseExpiry(flags.expires ?? cfg.defaultExpires);
      const tools =
        flags.tools === undefined
          ? undefined
          : flags.tools
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean);
      if (tools?.length === 0) throw cliError('CLI_USAGE', '--tools names no tool');
      const pepper = keysPepper(cfg);
      const { key, record } = await withStore(cfg, async (store) => {
        try {
          return await createApiKey(store, { tenantId: tenant, tools, expiresAt, label: flags.label, pepper });
        } catch (err) {
          if ((err as { code?: string }).code === 'INVALID_ARGUMENT') {
            throw cliError('CLI_USAGE', (err as Error).message);
          }
          throw err;
        }
      });
      io.stdout(
        flags.json
          ? `${JSON.stringify({ key, ...view(record) }, null, 2)}\n`
          : `API key for ${tenant} (shown once: store it now; only its hash is kept):\n${key}\n` +
              `id ${record.id}, tools ${tools ? tools.join(',') : '(tenant policy)'}, expires ${record.expiresAt?.toISOString() ?? 'never'}\n`,
      );
      setExit(EXIT.OK);
    });
  keys
    .command('list')
    .description('list keys (never the keys themselves): id, tenant, status, tools, expiry, last use')
    .argument('[tenant]', 'only this tenant')
    .option('--limit <n>', 'at most this many, newest first (max 1000)', '1000')
    .option('-c, --config <file>', 'config file with a keys section')
    .option('--json', 'print JSON')
    .action(async (tenant: string | undefined, flags: Flags & { limit: string }) => {
      const { cliError } = await impl();
      const { cfg } = await load(flags);
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw cliError('CLI_USAGE', '--limit takes 1..1000');
      const rows = await withStore(cfg, (store) => store.list({ tenantId: tenant, limit }));
      const views = rows.map((r) => view(r));
      io.stdout(flags.json ? `${JSON.stringify(views, null, 2)}\n` : table(views));
      setExit(EXIT.OK);
    });
  keys
    .command('revoke')
    .description('revoke a key by its id (in the key table, and in the replica-state revocations when configured)')
    .argument('<key-id>', 'the 12-character id that `keys list` shows')
    .option('-c, --config <file>', 'config file with a keys section')
    .option('--json', 'print the revoked record as JSON')
    .action(async (id: string, flags: Flags) => {
      const { cliError, PostgresRevocationStore, revokeApiKey } = await impl();
      const { cfg } = await load(flags);
      if (!/^[A-Za-z0-9_-]{12}$/.test(id)) throw cliError('CLI_USAGE', 'a key id is 12 base64url characters');
      const record = await withStore(cfg, async (store, pool) => {
        const revocations = cfg.revocationSchema
          ? new PostgresRevocationStore(pool, { schema: cfg.revocationSchema, cacheMs: 0 })
          : undefined;
        if (revocations) await revocations.migrate();
        return revokeApiKey(store, id, { revocations });
      });
      if (!record) throw cliError('CLI_UNKNOWN_KEY', 'no key has this id; nothing was revoked');
      io.stdout(
        flags.json
          ? `${JSON.stringify(view(record), null, 2)}\n`
          : `revoked ${record.id} (tenant ${record.tenantId})\n`,
      );
      setExit(EXIT.OK);
    });
}
