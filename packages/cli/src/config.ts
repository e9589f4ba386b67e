import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { doctorSectionSchema } from './doctor/config.ts';
import { dsarSectionSchema } from './dsar/config.ts';
import { cliError } from './errors.ts';
import { keysSectionSchema } from './keys/config.ts';

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const tenantId = z.string().regex(TENANT_ID, 'a tenant id: lowercase letters, digits, _ and -, at most 63');
const toolName = z.string().min(1).max(128);
const args = z.record(z.string(), z.unknown());

/** How the check gets a tenant's bearer token; at most one of token, tokenEnv, tokenCommand. */
export const checkTenantSchema = z
  .strictObject({
    /** A bearer token, as is. */
    token: z.string().min(1).optional(),
    /** The name of an environment variable holding the bearer token. */
    tokenEnv: z.string().min(1).optional(),
    /** A shell command that prints the bearer token (run with TENANTSCOPE_TENANT set; 10 s limit). */
    tokenCommand: z.string().min(1).optional(),
    /** `sub` of the tokens the check mints for this tenant. Default `tenantscope-check-<tenant>`. */
    subject: z.string().min(1).max(256).optional(),
    /** Tools this tenant must see. */
    tools: z.array(toolName).min(1),
    /** Tools this tenant must not see (besides every other tenant's tools, which it must not see either). */
    notTools: z.array(toolName).default([]),
    /** When true (default) any listed tool outside `tools` is a failure. */
    exhaustive: z.boolean().default(true),
    /**
     * A harmless, read-only tool call used for the tenant-argument, audit and session checks.
     * Default: the first of `tools`, with no arguments.
     */
    probeCall: z.strictObject({ name: toolName, arguments: args.default({}) }).optional(),
  })
  .refine((t) => [t.token, t.tokenEnv, t.tokenCommand].filter((x) => x !== undefined).length <= 1, {
    message: 'give at most one of token, tokenEnv, tokenCommand',
  });

/** A signing key the target trusts, so the check can mint good and bad tokens itself. */
export const signingSchema = z.strictObject({
  /** Path of the private key: PEM (PKCS#8) or a JWK JSON file. */
  signingKey: z.string().min(1),
  /** `iss` of minted tokens. */
  issuer: z.string().min(1),
  /** `aud` of minted tokens. Default the target URL. */
  audience: z.string().min(1).optional(),
  /** `kid` header. Default the JWK's `kid`, else none. */
  kid: z.string().min(1).optional(),
  /** Signing algorithm. Default from the key: ES256, ES384, RS256 or EdDSA. */
  algorithm: z.enum(['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA']).optional(),
  /** Name of the tenant claim. Default `tenant_id`. */
  tenantClaim: z.string().min(1).default('tenant_id'),
  /** The target's largest accepted token lifetime, in seconds; the check sends one 10 minutes longer. Default 3600. */
  maxLifetimeSeconds: z.number().int().positive().max(86_400).default(3600),
  /** Lifetime of the good tokens the check mints. Default 300. */
  ttlSeconds: z.number().int().positive().max(86_400).default(300),
});

export const auditLocationSchema = z.union([
  z.strictObject({
    /** A JSONL audit directory: `<tenant>.jsonl` files or `<tenant>/<day>.jsonl` hash-chained streams. */
    jsonlDir: z.string().min(1),
  }),
  z.strictObject({
    /** A Postgres URL of the tenantscope audit log (a role that can SELECT the events table). */
    postgresUrl: z.string().min(1),
    /** Schema of the audit tables. Default `tenantscope_audit`. */
    schema: z.string().min(1).default('tenantscope_audit'),
  }),
]);

export const probeSchema = z.strictObject({
  /** Which tenant calls. */
  tenant: tenantId,
  /** The tool. */
  tool: toolName,
  /** Its arguments. */
  arguments: args.default({}),
  /** Strings that must not appear anywhere in the answer (e.g. another tenant's customer name). */
  mustNotContain: z.array(z.string().min(1)).default([]),
  /** Strings that must appear in the answer. */
  mustContain: z.array(z.string().min(1)).default([]),
  /** true: the call must be refused; false: it must succeed. Default: either. */
  expectError: z.boolean().optional(),
});

export const checkSectionSchema = z.strictObject({
  /** The MCP endpoint (Streamable HTTP). The command-line argument wins. */
  url: z.url().optional(),
  /** Mint tokens with this key (all token checks need it). */
  auth: signingSchema.optional(),
  /** Two or more tenants: credentials and expected tools. */
  tenants: z.record(tenantId, checkTenantSchema).refine((t) => Object.keys(t).length >= 2, {
    message: 'at least two tenants are needed',
  }),
  /** Where the target's audit log can be read. Without it the audit checks are skipped. */
  audit: auditLocationSchema.optional(),
  /** Calls per tenant in the audit check (tenant i makes calls + i). Default 3. */
  auditCalls: z.number().int().min(1).max(100).default(3),
  /** How long to wait for audit events to appear, in ms. Default 5000. */
  auditWaitMs: z.number().int().min(0).max(60_000).default(5000),
  /** Your own probes. */
  probes: z.array(probeSchema).default([]),
  /** Per-request timeout, in ms. Default 10000. */
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
});

export const evidenceSectionSchema = z.strictObject({
  /** Flood measurement (EU AI Act Art. 15): one tenant floods, another's latency is measured. */
  flood: z
    .strictObject({
      /** Concurrent calls the flooding tenant keeps in flight. Default 16. */
      concurrency: z.number().int().min(1).max(256).default(16),
      /** Calls the measured tenant makes, before and during the flood. Default 40. */
      samples: z.number().int().min(5).max(1000).default(40),
      /** Largest accepted ratio of p50 latency during / before the flood. Default 3. */
      maxSlowdown: z.number().positive().default(3),
    })
    .default({ concurrency: 16, samples: 40, maxSlowdown: 3 }),
  /** Audit retention, in days, as configured for the target (reported as configured, not verified). */
  retentionDays: z.number().int().positive().optional(),
  /**
   * The target's admin API for the halt drill (EU AI Act Art. 14): `POST <url>/halt` and `<url>/resume`
   * with the JSON body `{"tenant": …}` and `Authorization: Bearer <the value of tokenEnv>` (the example
   * server's `/admin` endpoint). The drill halts `tenant`, checks a call is refused, resumes it and
   * checks a call is served. Without `admin` the drill is "not available".
   */
  admin: z.strictObject({ url: z.url(), tokenEnv: z.string().min(1), tenant: tenantId }).optional(),
});

/**
 * The whole `tenantscope` config file (`tenantscope.config.json`, or a `.ts`/`.js` module whose
 * default export is this object). Each command reads its own section; add a section here for a new
 * command.
 */
export const configSchema = z.strictObject({
  $schema: z.string().optional(),
  check: checkSectionSchema.optional(),
  evidence: evidenceSectionSchema.optional(),
  /** Stores for `tenant export|delete` and `subject export|erase` (see dsar/config.ts). */
  dsar: dsarSectionSchema.optional(),
  /** The API key table for `tenantscope keys` (see keys/config.ts). */
  keys: keysSectionSchema.optional(),
  /** Options of `tenantscope doctor` (see doctor/config.ts); the stores come from `dsar`. */
  doctor: doctorSectionSchema.optional(),
});

export type TenantscopeConfig = z.infer<typeof configSchema>;
export type CheckConfig = z.infer<typeof checkSectionSchema>;
export type CheckTenant = z.infer<typeof checkTenantSchema>;
export type EvidenceConfig = z.infer<typeof evidenceSectionSchema>;
export type Probe = z.infer<typeof probeSchema>;

/** "check.tenants.acme.tools: expected array" for each problem, so the user sees which field. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** Validates a config object; throws CLI_CONFIG_INVALID naming every bad field. */
export function parseConfig(value: unknown, source = 'config'): TenantscopeConfig {
  const r = configSchema.safeParse(value);
  if (!r.success) throw cliError('CLI_CONFIG_INVALID', `${source}: ${describeIssues(r.error)}`);
  return r.data;
}

/** Reads a config file as is (not validated): JSON, or a TS/JS module with a default export. */
export async function readConfigValue(path: string): Promise<unknown> {
  const file = resolve(path);
  try {
    if (extname(file) === '.json') return JSON.parse(await readFile(file, 'utf8'));
    return ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
  } catch (cause) {
    throw cliError('CLI_CONFIG_INVALID', `${path}: cannot be read (${(cause as Error).message})`, { cause });
  }
}

/** Reads and validates a config file. Relative paths resolve from the cwd. */
export async function loadConfig(path: string): Promise<TenantscopeConfig> {
  return parseConfig(await readConfigValue(path), path);
}
