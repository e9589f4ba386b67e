import { readFile } from 'node:fs/promises';
import { TenantScopeError } from './errors.ts';
import { DEFAULT_TENANT_ID_PATTERN, type Tenant } from './tenant.ts';

/** Per-tenant limits. Every field is optional; the server's defaults apply where absent. */
export interface TenantLimits {
  /** Tool calls per minute (token bucket, burst = this number). */
  callsPerMinute?: number;
  /** Concurrent tool calls. */
  maxConcurrentCalls?: number;
  /** Open MCP sessions. */
  maxSessions?: number;
}

/** What a tenant may do, as the operator configured it. */
export interface TenantPolicy {
  /** Tool names or globs (`*` matches any run of characters) this tenant may call. */
  tools: readonly string[];
  /** Limits for this tenant. */
  limits?: TenantLimits;
}

/** Looks up a tenant's policy. A tenant the directory does not know is denied. */
export interface TenantDirectory {
  get(tenantId: string): Promise<TenantPolicy | undefined>;
}

/** A directory held in memory, validated on construction. */
export class StaticTenantDirectory implements TenantDirectory {
  readonly #tenants: Map<string, TenantPolicy>;
  constructor(tenants: Record<string, TenantPolicy>) {
    this.#tenants = new Map(Object.entries(validateDirectory(tenants)));
  }
  async get(tenantId: string): Promise<TenantPolicy | undefined> {
    return this.#tenants.get(tenantId);
  }
  /** Tenant ids, for tooling. */
  ids(): string[] {
    return [...this.#tenants.keys()];
  }
}

/**
 * Loads a directory from a JSON file of the form
 * `{ "tenants": { "acme": { "tools": ["whoami", "query_*"], "limits": { "callsPerMinute": 600 } } } }`.
 */
export async function loadTenantDirectory(path: string): Promise<StaticTenantDirectory> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new TenantScopeError('INVALID_CONFIG', 'tenant directory file could not be read as JSON', { cause });
  }
  const tenants = (json as { tenants?: unknown } | null)?.tenants;
  if (!tenants || typeof tenants !== 'object' || Array.isArray(tenants)) {
    throw new TenantScopeError('INVALID_CONFIG', 'tenant directory must have a "tenants" object');
  }
  return new StaticTenantDirectory(tenants as Record<string, TenantPolicy>);
}

function validateDirectory(tenants: Record<string, TenantPolicy>): Record<string, TenantPolicy> {
  const out: Record<string, TenantPolicy> = {};
  for (const [id, policy] of Object.entries(tenants)) {
    if (!DEFAULT_TENANT_ID_PATTERN.test(id)) {
      throw new TenantScopeError('INVALID_CONFIG', `tenant directory: invalid tenant id ${JSON.stringify(id)}`);
    }
    if (!policy || !Array.isArray(policy.tools) || !policy.tools.every((t) => typeof t === 'string' && t.length > 0)) {
      throw new TenantScopeError('INVALID_CONFIG', `tenant directory: ${id}.tools must be a list of names`);
    }
    const limits = policy.limits ?? {};
    for (const [k, v] of Object.entries(limits)) {
      if (!['callsPerMinute', 'maxConcurrentCalls', 'maxSessions'].includes(k)) {
        throw new TenantScopeError('INVALID_CONFIG', `tenant directory: ${id}.limits.${k} is not a known limit`);
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
        throw new TenantScopeError('INVALID_CONFIG', `tenant directory: ${id}.limits.${k} must be a positive integer`);
      }
    }
    out[id] = Object.freeze({ tools: Object.freeze([...policy.tools]), limits: Object.freeze({ ...limits }) });
  }
  return out;
}

/** Glob match for tool names: `*` matches any run of characters, everything else is literal. */
const globCache = new Map<string, RegExp>();

export function toolMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  let re = globCache.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.split('*').map(escapeRe).join('.*')}$`);
    if (globCache.size >= 4096) globCache.clear(); // bounded
    globCache.set(pattern, re);
  }
  return re.test(name);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The tools a tenant may call: registered ∩ tenant policy ∩ the token's `allowed_tools` (when the
 * token has that claim). A tool neither grants is denied.
 */
export function effectiveTools(registered: Iterable<string>, policy: TenantPolicy, tenant: Tenant): Set<string> {
  const out = new Set<string>();
  for (const name of registered) {
    const byPolicy = policy.tools.some((p) => toolMatches(p, name));
    const byToken = tenant.allowedTools === undefined || tenant.allowedTools.some((p) => toolMatches(p, name));
    if (byPolicy && byToken) out.add(name);
  }
  return out;
}
