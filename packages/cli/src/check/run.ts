import { randomBytes } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CheckConfig, CheckTenant } from '../config.ts';
import { cliError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { describeLocation, readAudit, type SeenEvent } from './audit-reader.ts';
import { type Exchange, Http, hasResult, rpc } from './http.ts';
import { algNone, createMinter, flipSignature, type Minter, runTokenCommand, tamperPayload } from './tokens.ts';

export type Status = 'pass' | 'fail' | 'warn' | 'skip';
export type Group = 'tokens' | 'tools' | 'sessions' | 'audit' | 'probes';

export interface CheckResult {
  /** Stable id, e.g. `tokens.expired` or `tools.visible.acme`; `--only` selects by id prefix. */
  id: string;
  group: Group;
  title: string;
  status: Status;
  /** What was seen, in one line. */
  detail: string;
  /** The raw exchanges behind the verdict (bearer tokens replaced by their kind). */
  evidence: unknown[];
  startedAt: string;
  durationMs: number;
}

export interface CheckReport {
  tool: 'tenantscope check';
  version: string;
  target: string;
  startedAt: string;
  finishedAt: string;
  /** `session` when the server hands out `mcp-session-id`, `stateless` when it does not. */
  mode: 'session' | 'stateless' | 'unknown';
  strict: boolean;
  /** Every tool each tenant was shown. */
  observedTools: Record<string, string[]>;
  summary: { total: number; pass: number; fail: number; warn: number; skip: number };
  /** True when every check passed (warnings count as failures in strict mode). */
  ok: boolean;
  results: CheckResult[];
}

export interface RunOptions {
  /** One bad answer fails the run: warnings count as failures and the run stops at the first. */
  strict?: boolean;
  /** Stop at the first failed check. */
  failFast?: boolean;
  /** Only checks whose id starts with one of these. */
  only?: string[];
  /** Called as each check finishes (the TTY progress line). */
  onProgress?: (done: number, total: number, result: CheckResult) => void;
}

interface Ctx {
  cfg: CheckConfig;
  http: Http;
  minter: Minter | undefined;
  tenants: string[];
  tokens: Record<string, string>;
  observed: Record<string, string[]>;
  mode: CheckReport['mode'];
}

interface Outcome {
  status: Status;
  detail: string;
  evidence?: unknown[];
}

interface Check {
  id: string;
  group: Group;
  title: string;
  /** `warn`: a failure is reported as a warning (fails only in strict mode). */
  severity?: 'warn';
  run(ctx: Ctx): Promise<Outcome>;
}

const skip = (detail: string): Outcome => ({ status: 'skip', detail });
const NEEDS_KEY = 'needs check.auth (a signing key the target trusts) to mint this token';

function probeCallOf(t: CheckTenant): { name: string; arguments: Record<string, unknown> } {
  return t.probeCall ?? { name: t.tools[0] as string, arguments: {} };
}

/** A request the server turned down: 4xx, or a JSON-RPC error, and never a result. */
function refusedOnSession(ex: Exchange): boolean {
  return (
    !hasResult(ex.body) && (ex.status >= 400 || (typeof ex.body === 'object' && ex.body !== null && 'error' in ex.body))
  );
}
/** A token refused at the door: 401 or 403, no result. */
function refusedAtDoor(ex: Exchange): boolean {
  return (ex.status === 401 || ex.status === 403) && !hasResult(ex.body);
}

async function listTools(client: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 50; page++) {
    const r = await client.listTools(cursor ? { cursor } : undefined);
    names.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  return names.sort();
}

function answerText(r: unknown): string {
  return JSON.stringify(r) ?? '';
}

async function callTool(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<{ refused: boolean; answer: unknown }> {
  try {
    const r = await client.callTool({ name, arguments: args });
    return { refused: r.isError === true, answer: r };
  } catch (err) {
    const e = err as { code?: unknown; message?: string };
    return { refused: true, answer: { error: { code: e.code, message: e.message } } };
  }
}

// ---------------------------------------------------------------- token checks

/** A bad token must be refused at initialize and on an open session of the same tenant. */
async function badToken(ctx: Ctx, label: string, make: () => Promise<string | null>): Promise<Outcome> {
  const token = await make();
  if (token === null) return skip('the base token is not a compact JWS, so it cannot be altered');
  const tenant = ctx.tenants[0] as string;
  const good = ctx.tokens[tenant] as string;
  const init = await ctx.http.post(rpcInit(), token, label);
  const evidence: unknown[] = [init];
  let onSession: Exchange | undefined;
  const open = await ctx.http.initialize(good, `good token (${tenant})`);
  if (open.ok && open.sessionId) {
    onSession = await ctx.http.post(rpc('tools/list'), token, label, open.sessionId);
    evidence.push(onSession);
    await ctx.http.end(open.sessionId, good);
  }
  const atDoor = refusedAtDoor(init);
  const sessionOk = !onSession || refusedOnSession(onSession);
  if (atDoor && sessionOk) {
    return {
      status: 'pass',
      detail: `refused: HTTP ${init.status}${onSession ? `; on an open session HTTP ${onSession.status}` : ''}`,
      evidence,
    };
  }
  return {
    status: 'fail',
    detail: !atDoor
      ? `accepted at initialize (HTTP ${init.status}${hasResult(init.body) ? ', with a result' : ''})`
      : `accepted on an open session (HTTP ${onSession?.status})`,
    evidence,
  };
}

function rpcInit(): Record<string, unknown> {
  return rpc('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'tenantscope-check', version: '0.1.0' },
  });
}

function mintCheck(id: string, title: string, make: (m: Minter, tenant: string, ctx: Ctx) => Promise<string>): Check {
  return {
    id: `tokens.${id}`,
    group: 'tokens',
    title,
    run: async (ctx) => {
      const m = ctx.minter;
      if (!m) return skip(NEEDS_KEY);
      return badToken(ctx, id, () => make(m, ctx.tenants[0] as string, ctx));
    },
  };
}

function tokenChecks(): Check[] {
  const now = () => Math.floor(Date.now() / 1000);
  return [
    {
      id: 'tokens.missing',
      group: 'tokens',
      title: 'missing token: 401 with resource_metadata, RFC 9728 document served and matching',
      run: async (ctx) => {
        const res = await ctx.http.post(rpcInit(), null, 'none');
        const evidence: unknown[] = [res];
        if (res.status !== 401) return { status: 'fail', detail: `HTTP ${res.status}, not 401`, evidence };
        const www = res.headers['www-authenticate'] ?? '';
        const m = /resource_metadata="([^"]+)"/.exec(www);
        if (!/^Bearer\b/i.test(www) || !m) {
          return { status: 'fail', detail: 'no WWW-Authenticate: Bearer … resource_metadata="…"', evidence };
        }
        const metaUrl = new URL(m[1] as string, ctx.http.url);
        const target = new URL(ctx.http.url);
        if (metaUrl.origin !== target.origin) {
          return {
            status: 'fail',
            detail: `resource_metadata points to another origin (${metaUrl.origin}); not fetched`,
            evidence,
          };
        }
        const meta = await ctx.http.get(metaUrl.toString());
        evidence.push(meta);
        const doc = meta.body as { resource?: unknown; authorization_servers?: unknown };
        if (meta.status !== 200 || typeof doc !== 'object' || doc === null) {
          return { status: 'fail', detail: `metadata document: HTTP ${meta.status}, not a JSON object`, evidence };
        }
        if (typeof doc.resource !== 'string' || normUrl(doc.resource) !== normUrl(ctx.http.url)) {
          return {
            status: 'fail',
            detail: `metadata resource ${JSON.stringify(doc.resource)} is not ${ctx.http.url}`,
            evidence,
          };
        }
        const wellKnown = `${target.origin}/.well-known/oauth-protected-resource${target.pathname === '/' ? '' : target.pathname}`;
        const where =
          normUrl(metaUrl.toString()) === normUrl(wellKnown)
            ? 'at the RFC 9728 well-known path'
            : `at ${metaUrl.pathname}`;
        return { status: 'pass', detail: `401, metadata ${where}, resource matches`, evidence };
      },
    },
    {
      id: 'tokens.wrong-signature',
      group: 'tokens',
      title: 'refused: wrong signature',
      run: (ctx) =>
        badToken(ctx, 'wrong-signature', async () =>
          ctx.minter
            ? ctx.minter.mintWithForeignKey(ctx.tenants[0] as string)
            : flipSignature(ctx.tokens[ctx.tenants[0] as string] as string),
        ),
    },
    {
      id: 'tokens.alg-none',
      group: 'tokens',
      title: 'refused: alg none',
      run: (ctx) => badToken(ctx, 'alg-none', async () => algNone(ctx.tokens[ctx.tenants[0] as string] as string)),
    },
    mintCheck('hs-rs-confusion', 'refused: HS256 keyed with the public key (HS/RS confusion)', (m, t) =>
      m.mintHsConfusion(t),
    ),
    mintCheck('expired', 'refused: expired token replayed', (m, t) =>
      m.mint(t, { claims: { iat: now() - 1200, exp: now() - 600 } }),
    ),
    mintCheck('nbf-future', 'refused: nbf in the future', (m, t) => m.mint(t, { claims: { nbf: now() + 900 } })),
    mintCheck('wrong-audience', 'refused: wrong audience', (m, t) =>
      m.mint(t, { claims: { aud: 'https://another-server.invalid/mcp' } }),
    ),
    mintCheck('wrong-issuer', 'refused: wrong issuer', (m, t) =>
      m.mint(t, { claims: { iss: 'https://another-issuer.invalid' } }),
    ),
    mintCheck('lifetime-over-cap', 'refused: lifetime over the cap', (m, t, ctx) =>
      m.mint(t, { claims: { exp: now() + (ctx.cfg.auth?.maxLifetimeSeconds ?? 3600) + 600 } }),
    ),
    {
      id: 'tokens.forged-allowed-tools',
      group: 'tokens',
      title: 'refused: forged allowed_tools claim',
      run: (ctx) =>
        badToken(ctx, 'forged-allowed-tools', async () =>
          tamperPayload(ctx.tokens[ctx.tenants[0] as string] as string, (p) => {
            p.allowed_tools = ['*', ...allTools(ctx)];
          }),
        ),
    },
    {
      id: 'tokens.forged-tenant',
      group: 'tokens',
      title: "refused: tenant claim changed to another tenant's",
      run: (ctx) =>
        badToken(ctx, 'forged-tenant', async () =>
          tamperPayload(ctx.tokens[ctx.tenants[0] as string] as string, (p) => {
            p[ctx.cfg.auth?.tenantClaim ?? 'tenant_id'] = ctx.tenants[1];
          }),
        ),
    },
  ];
}

function normUrl(u: string): string {
  try {
    const x = new URL(u);
    return `${x.origin}${x.pathname.replace(/\/$/, '')}`;
  } catch {
    return u;
  }
}

function allTools(ctx: Ctx): string[] {
  return [...new Set(ctx.tenants.flatMap((t) => ctx.cfg.tenants[t]?.tools ?? []))].sort();
}

/** Tools `tenant` must not see: its notTools and every other tenant's tools it is not given. */
function foreignTools(ctx: Ctx, tenant: string): string[] {
  const own = new Set(ctx.cfg.tenants[tenant]?.tools);
  const other = ctx.tenants.filter((t) => t !== tenant).flatMap((t) => ctx.cfg.tenants[t]?.tools ?? []);
  return [...new Set([...(ctx.cfg.tenants[tenant]?.notTools ?? []), ...other])].filter((t) => !own.has(t)).sort();
}

// ---------------------------------------------------------------- tools and tenants

function toolChecks(tenants: string[]): Check[] {
  const checks: Check[] = [];
  for (const tenant of tenants) {
    checks.push({
      id: `tools.visible.${tenant}`,
      group: 'tools',
      title: `${tenant} sees only its tools`,
      run: async (ctx) => {
        const t = ctx.cfg.tenants[tenant] as CheckTenant;
        const client = await ctx.http.client(ctx.tokens[tenant] as string);
        try {
          const seen = await listTools(client);
          ctx.observed[tenant] = seen;
          const missing = t.tools.filter((x) => !seen.includes(x));
          const forbidden = foreignTools(ctx, tenant).filter((x) => seen.includes(x));
          const extra = t.exhaustive ? seen.filter((x) => !t.tools.includes(x) && !forbidden.includes(x)) : [];
          const evidence = [{ tenant, method: 'tools/list', tools: seen }];
          const problems = [
            forbidden.length ? `sees tools it must not: ${forbidden.join(', ')}` : '',
            extra.length ? `sees unexpected tools: ${extra.join(', ')}` : '',
            missing.length ? `misses: ${missing.join(', ')}` : '',
          ].filter(Boolean);
          return problems.length
            ? { status: 'fail', detail: problems.join('; '), evidence }
            : { status: 'pass', detail: `${seen.length} tools, as expected`, evidence };
        } finally {
          await client.close();
        }
      },
    });
    checks.push({
      id: `tools.foreign-like-unknown.${tenant}`,
      group: 'tools',
      title: `${tenant}: another tenant's tool is answered exactly like an unknown tool`,
      run: async (ctx) => {
        const foreign = foreignTools(ctx, tenant).slice(0, 5);
        if (!foreign.length) return skip('no tool this tenant must not see is named in the config');
        const token = ctx.tokens[tenant] as string;
        return inSession(ctx, tenant, token, async (open) => {
          const unknown = `zz_no_such_tool_${randomBytes(4).toString('hex')}`;
          const evidence: unknown[] = [];
          const differs: string[] = [];
          const ref = await ctx.http.post(
            rpc('tools/call', { name: unknown, arguments: {} }),
            token,
            `good token (${tenant})`,
            open.sessionId,
          );
          evidence.push(ref);
          for (const name of foreign) {
            const ex = await ctx.http.post(
              rpc('tools/call', { name, arguments: {} }),
              token,
              `good token (${tenant})`,
              open.sessionId,
            );
            evidence.push(ex);
            if (shape(ex, name) !== shape(ref, unknown)) differs.push(name);
          }
          return differs.length
            ? { status: 'fail', detail: `answered differently from an unknown tool: ${differs.join(', ')}`, evidence }
            : {
                status: 'pass',
                detail: `${foreign.length} foreign tools answered like ${'`'}${unknown}${'`'}`,
                evidence,
              };
        });
      },
    });
    checks.push({
      id: `tools.tenant-argument.${tenant}`,
      group: 'tools',
      title: `${tenant}: a tenant id in the arguments (any depth) is refused or ignored`,
      run: async (ctx) => {
        const other = ctx.tenants.find((t) => t !== tenant) as string;
        const call = probeCallOf(ctx.cfg.tenants[tenant] as CheckTenant);
        const variants: Record<string, unknown>[] = [
          { ...call.arguments, tenant_id: other },
          { ...call.arguments, tenantId: other },
          { ...call.arguments, filter: { tenant_id: other } },
          { ...call.arguments, items: [{ meta: { tenant: other } }] },
        ];
        const client = await ctx.http.client(ctx.tokens[tenant] as string);
        try {
          const evidence: unknown[] = [];
          const leaked: number[] = [];
          let refused = 0;
          for (const [i, args] of variants.entries()) {
            const r = await callTool(client, call.name, args);
            evidence.push({ tenant, tool: call.name, arguments: args, refused: r.refused, answer: r.answer });
            if (r.refused) refused++;
            else if (answerText(r.answer).includes(other)) leaked.push(i);
          }
          return leaked.length
            ? {
                status: 'fail',
                detail: `${call.name} answered with ${other}'s id for ${leaked.length} of ${variants.length} injected arguments`,
                evidence,
              }
            : {
                status: 'pass',
                detail: `${refused} refused, ${variants.length - refused} ignored (${call.name})`,
                evidence,
              };
        } finally {
          await client.close();
        }
      },
    });
  }
  return checks;
}

/** Opens a raw session as `tenant` (initialize fails the check), runs `body`, and ends the session. */
async function inSession(
  ctx: Ctx,
  tenant: string,
  token: string,
  body: (open: { sessionId: string | null; exchange: Exchange }) => Promise<Outcome>,
): Promise<Outcome> {
  const open = await ctx.http.initialize(token, `good token (${tenant})`);
  if (!open.ok) {
    return { status: 'fail', detail: `initialize refused (HTTP ${open.exchange.status})`, evidence: [open.exchange] };
  }
  try {
    return await body(open);
  } finally {
    await ctx.http.end(open.sessionId, token);
  }
}

/** A response reduced to what a caller can compare: status and body, ids dropped, the tool name blanked. */
function shape(ex: Exchange, name: string): string {
  const body =
    typeof ex.body === 'object' && ex.body !== null ? { ...(ex.body as Record<string, unknown>), id: null } : ex.body;
  return JSON.stringify({ status: ex.status, body }).split(name).join('<tool>');
}

// ---------------------------------------------------------------- sessions

function sessionChecks(): Check[] {
  return [
    {
      id: 'sessions.cross-tenant',
      group: 'sessions',
      title: "another tenant's token on a session is refused (session mode) / sees only its own view (stateless)",
      run: async (ctx) => {
        const [a, b] = ctx.tenants as [string, string];
        const ta = ctx.tokens[a] as string;
        const tb = ctx.tokens[b] as string;
        return inSession(ctx, a, ta, async (open) => {
          const evidence: unknown[] = [open.exchange];
          if (open.sessionId) {
            ctx.mode = 'session';
            const call = probeCallOf(ctx.cfg.tenants[a] as CheckTenant);
            const list = await ctx.http.post(rpc('tools/list'), tb, `good token (${b})`, open.sessionId);
            const invoke = await ctx.http.post(rpc('tools/call', call), tb, `good token (${b})`, open.sessionId);
            evidence.push(list, invoke);
            const ok = refusedOnSession(list) && refusedOnSession(invoke);
            return ok
              ? {
                  status: 'pass',
                  detail: `session mode: ${b}'s token on ${a}'s session refused (HTTP ${list.status}, ${invoke.status})`,
                  evidence,
                }
              : { status: 'fail', detail: `session mode: ${b}'s token was served on ${a}'s session`, evidence };
          }
          ctx.mode = 'stateless';
          const list = await ctx.http.post(rpc('tools/list'), tb, `good token (${b})`, null);
          evidence.push(list);
          const names = ((list.body as { result?: { tools?: { name: string }[] } })?.result?.tools ?? [])
            .map((t) => t.name)
            .sort();
          const leaked = foreignTools(ctx, b).filter((x) => names.includes(x));
          return hasResult(list.body) && leaked.length === 0
            ? { status: 'pass', detail: `stateless: ${b}'s request after ${a}'s sees only ${b}'s tools`, evidence }
            : {
                status: 'fail',
                detail: `stateless: ${b}'s request ${leaked.length ? `sees ${leaked.join(', ')}` : `failed (HTTP ${list.status})`}`,
                evidence,
              };
        });
      },
    },
    {
      id: 'sessions.cross-subject',
      group: 'sessions',
      title: 'a token for another subject of the same tenant on a session is refused',
      severity: 'warn',
      run: async (ctx) => {
        const minter = ctx.minter;
        if (!minter) return skip(NEEDS_KEY);
        const a = ctx.tenants[0] as string;
        const ta = await minter.mint(a);
        return inSession(ctx, a, ta, async (open) => {
          if (!open.sessionId) return skip('stateless server: there is no session to bind');
          const other = await minter.mint(a, { subject: `tenantscope-check-other-${a}` });
          const list = await ctx.http.post(
            rpc('tools/list'),
            other,
            `good token (${a}, other subject)`,
            open.sessionId,
          );
          return refusedOnSession(list)
            ? { status: 'pass', detail: `refused (HTTP ${list.status})`, evidence: [list] }
            : { status: 'fail', detail: 'another subject was served on the session', evidence: [list] };
        });
      },
    },
  ];
}

// ---------------------------------------------------------------- audit

function auditCheck(): Check {
  return {
    id: 'audit.streams',
    group: 'audit',
    title: 'N calls across tenants land in the right streams, exact counts',
    run: async (ctx) => {
      const loc = ctx.cfg.audit;
      if (!loc) return skip('no check.audit location configured');
      const since = new Date(Date.now() - 1000);
      const runId = randomBytes(4).toString('hex');
      const made: { tenant: string; tool: string; calls: number; session: string | null; subject: string | null }[] =
        [];
      const before = await readAudit(loc, since);
      for (const [i, tenant] of ctx.tenants.entries()) {
        const call = probeCallOf(ctx.cfg.tenants[tenant] as CheckTenant);
        const subject = ctx.minter ? `tenantscope-check-audit-${runId}-${tenant}` : null;
        const token = ctx.minter
          ? await ctx.minter.mint(tenant, { subject: subject as string })
          : (ctx.tokens[tenant] as string);
        const client = await ctx.http.client(token);
        const calls = ctx.cfg.auditCalls + i;
        try {
          for (let n = 0; n < calls; n++) {
            const r = await callTool(client, call.name, call.arguments);
            if (r.refused)
              return { status: 'fail', detail: `${tenant}: ${call.name} was refused`, evidence: [r.answer] };
          }
          const session = (client.transport as StreamableHTTPClientTransport | undefined)?.sessionId ?? null;
          made.push({ tenant, tool: call.name, calls, session, subject });
        } finally {
          await client.close();
        }
      }
      // Attribute events to this run: by session id, else by the minted subject, else by the delta.
      const mine = (e: SeenEvent, m: (typeof made)[number]) =>
        e.tool_name === m.tool &&
        (e.event_type === null || e.event_type === 'tool_call') &&
        (m.session ? e.session_id === m.session : m.subject ? e.subject === m.subject : true);
      const tally = (events: SeenEvent[]) =>
        made.map((m) => {
          const own = events.filter((e) => mine(e, m) && e.stream === m.tenant && e.tenant_id === m.tenant).length;
          const elsewhere = events.filter((e) => mine(e, m) && (e.stream !== m.tenant || e.tenant_id !== m.tenant));
          return { m, own, elsewhere };
        });
      const deadline = Date.now() + ctx.cfg.auditWaitMs;
      const base = made.some((m) => !m.session && !m.subject) ? tally(before) : null;
      let rows = tally(await readAudit(loc, since));
      const settled = () => rows.every((r, i) => r.own - (base?.[i]?.own ?? 0) >= r.m.calls);
      while (!settled() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        rows = tally(await readAudit(loc, since));
      }
      const table = rows.map((r, i) => ({
        tenant: r.m.tenant,
        tool: r.m.tool,
        calls: r.m.calls,
        attributedBy: r.m.session ? 'session id' : r.m.subject ? 'subject' : 'count delta',
        inOwnStream: r.own - (base?.[i]?.own ?? 0),
        inOtherStreams: r.elsewhere.length - (base?.[i]?.elsewhere.length ?? 0),
        otherStreams: [...new Set(r.elsewhere.map((e) => e.stream))],
      }));
      const bad = table.filter((t) => t.inOwnStream !== t.calls || t.inOtherStreams !== 0);
      const evidence = [{ location: describeLocation(loc), since: since.toISOString(), table }];
      return bad.length
        ? {
            status: 'fail',
            detail: bad
              .map(
                (t) => `${t.tenant}: ${t.calls} calls, ${t.inOwnStream} in its stream, ${t.inOtherStreams} elsewhere`,
              )
              .join('; '),
            evidence,
          }
        : { status: 'pass', detail: table.map((t) => `${t.tenant} ${t.calls}/${t.calls}`).join(', '), evidence };
    },
  };
}

// ---------------------------------------------------------------- probes

function probeChecks(cfg: CheckConfig): Check[] {
  return cfg.probes.map((p, i) => ({
    id: `probes.${i + 1}.${p.tenant}.${p.tool}`,
    group: 'probes' as const,
    title: `probe ${i + 1}: ${p.tenant} calls ${p.tool}`,
    run: async (ctx: Ctx): Promise<Outcome> => {
      if (!ctx.tokens[p.tenant]) return { status: 'fail', detail: `probe tenant ${p.tenant} is not in check.tenants` };
      const client = await ctx.http.client(ctx.tokens[p.tenant] as string);
      try {
        const r = await callTool(client, p.tool, p.arguments);
        const text = answerText(r.answer);
        const evidence = [
          { tenant: p.tenant, tool: p.tool, arguments: p.arguments, refused: r.refused, answer: r.answer },
        ];
        const found = p.mustNotContain.filter((s) => text.includes(s));
        const absent = p.mustContain.filter((s) => !text.includes(s));
        const problems = [
          found.length ? `answer contains ${found.map((s) => JSON.stringify(s)).join(', ')}` : '',
          absent.length ? `answer lacks ${absent.map((s) => JSON.stringify(s)).join(', ')}` : '',
          p.expectError === true && !r.refused ? 'expected a refusal, got an answer' : '',
          p.expectError === false && r.refused ? 'expected an answer, got a refusal' : '',
        ].filter(Boolean);
        return problems.length
          ? { status: 'fail', detail: problems.join('; '), evidence }
          : { status: 'pass', detail: r.refused ? 'refused, as allowed' : 'answer as declared', evidence };
      } finally {
        await client.close();
      }
    },
  }));
}

// ---------------------------------------------------------------- runner

/** Gets each tenant's bearer token: given, from the environment, from a command, or minted. */
async function resolveTokens(cfg: CheckConfig, minter: Minter | undefined): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const [tenant, t] of Object.entries(cfg.tenants)) {
    if (t.token) tokens[tenant] = t.token;
    else if (t.tokenEnv) {
      const v = process.env[t.tokenEnv];
      if (!v) throw cliError('CLI_CONFIG_INVALID', `check.tenants.${tenant}.tokenEnv: ${t.tokenEnv} is not set`);
      tokens[tenant] = v;
    } else if (t.tokenCommand) tokens[tenant] = await runTokenCommand(t.tokenCommand, tenant);
    else if (minter) tokens[tenant] = await minter.mint(tenant, t.subject ? { subject: t.subject } : {});
    else {
      throw cliError(
        'CLI_CONFIG_INVALID',
        `check.tenants.${tenant}: give token, tokenEnv or tokenCommand, or check.auth to mint tokens`,
      );
    }
  }
  return tokens;
}

/** Every check, in run order. */
export function allChecks(cfg: CheckConfig): Check[] {
  const tenants = Object.keys(cfg.tenants);
  return [...tokenChecks(), ...toolChecks(tenants), ...sessionChecks(), auditCheck(), ...probeChecks(cfg)];
}

export { VERSION };

/** Runs the checks against `url` and returns the report (it never throws for a failed check). */
export async function runCheck(url: string, cfg: CheckConfig, options: RunOptions = {}): Promise<CheckReport> {
  const startedAt = new Date();
  let checks = allChecks(cfg);
  if (options.only?.length) {
    const only = options.only;
    checks = checks.filter((c) => only.some((o) => c.id === o || c.id.startsWith(`${o}.`)));
    if (checks.length === 0) throw cliError('CLI_USAGE', `--only ${only.join(',')}: no check has that id or prefix`);
  }
  const http = new Http(url, cfg.timeoutMs);
  const minter = cfg.auth ? await createMinter(cfg.auth, url) : undefined;
  const ctx: Ctx = {
    cfg,
    http,
    minter,
    tenants: Object.keys(cfg.tenants),
    tokens: await resolveTokens(cfg, minter),
    observed: {},
    mode: 'unknown',
  };
  const strict = options.strict ?? false;
  const results: CheckResult[] = [];
  for (const check of checks) {
    const t0 = performance.now();
    const at = new Date().toISOString();
    let out: Outcome;
    try {
      out = await check.run(ctx);
    } catch (err) {
      if ((err as { code?: string }).code === 'CLI_TARGET_UNREACHABLE' && results.length === 0) throw err;
      out = { status: 'fail', detail: `error: ${(err as Error).message}` };
    }
    const status: Status = out.status === 'fail' && check.severity === 'warn' ? 'warn' : out.status;
    const result: CheckResult = {
      id: check.id,
      group: check.group,
      title: check.title,
      status,
      detail: out.detail,
      evidence: out.evidence ?? [],
      startedAt: at,
      durationMs: Math.round(performance.now() - t0),
    };
    results.push(result);
    options.onProgress?.(results.length, checks.length, result);
    const failed = status === 'fail' || (strict && status === 'warn');
    if (failed && (options.failFast || strict)) break;
  }
  const count = (s: Status) => results.filter((r) => r.status === s).length;
  const summary = {
    total: results.length,
    pass: count('pass'),
    fail: count('fail'),
    warn: count('warn'),
    skip: count('skip'),
  };
  return {
    tool: 'tenantscope check',
    version: VERSION,
    target: url,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    mode: ctx.mode,
    strict,
    observedTools: ctx.observed,
    summary,
    ok: summary.fail === 0 && (!strict || summary.warn === 0),
    results,
  };
}
