import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type AnchorStore, type VerifyReport, verifyJsonl } from '@tenantscope/audit';
import pg from 'pg';
import { describeLocation, readAudit } from '../check/audit-reader.ts';
import { Http } from '../check/http.ts';
import { type CheckReport, type CheckResult, runCheck, VERSION } from '../check/run.ts';
import { createMinter } from '../check/tokens.ts';
import type { CheckConfig, EvidenceConfig, TenantscopeConfig } from '../config.ts';
import { cliError } from '../errors.ts';
import { renderHtml, renderMarkdown } from './render.ts';

export type ItemStatus = 'pass' | 'fail' | 'info';
export type ControlStatus = 'met' | 'failed' | 'partial' | 'not available';

/** One piece of raw evidence: what produced it, when, and the SHA-256 of its raw output. */
export interface EvidenceItem {
  id: string;
  title: string;
  status: ItemStatus;
  summary: string;
  /** ISO time the evidence was gathered. */
  timestamp: string;
  /** The command that reproduces it. */
  command: string;
  /** `sha256:<hex>` of `raw` (UTF-8), the exact bytes in `raw/<id>.txt`. */
  sha256: string;
  /** Path of the raw output, relative to the report. */
  rawFile: string;
  raw: string;
}

/** One thing a control asks for: the items that show it, or why it is not available. */
export interface ControlPart {
  what: string;
  items: string[];
  notAvailable?: string;
}

export interface Control {
  id: string;
  framework: string;
  name: string;
  status: ControlStatus;
  parts: ControlPart[];
}

export interface EvidenceReport {
  tool: 'tenantscope evidence';
  version: string;
  target: string;
  generatedAt: string;
  command: string;
  headline: {
    controls: number;
    met: number;
    failed: number;
    partial: number;
    notAvailable: number;
    checksPassed: number;
    checksFailed: number;
    text: string;
  };
  controls: Control[];
  items: EvidenceItem[];
  files: string[];
}

export interface EvidenceOptions {
  out: string;
  /** The command line that produced the report (for the items' `command`). */
  command: string;
  onProgress?: (done: number, total: number, r: { id: string; status: string }) => void;
}

const sha256 = (s: string) => `sha256:${createHash('sha256').update(s, 'utf8').digest('hex')}`;
const safeId = (s: string) => s.replace(/[^a-zA-Z0-9_.-]/g, '-');

class Items {
  readonly list: EvidenceItem[] = [];
  add(i: Omit<EvidenceItem, 'sha256' | 'rawFile' | 'raw'> & { raw: unknown }): string {
    const raw = typeof i.raw === 'string' ? i.raw : `${JSON.stringify(i.raw, null, 2)}\n`;
    const id = safeId(i.id);
    this.list.push({ ...i, id, raw, sha256: sha256(raw), rawFile: `raw/${id}.txt` });
    return id;
  }
}

/** Runs every live check, gathers the rest, maps it to controls and writes the report files. */
export async function runEvidence(
  url: string,
  config: TenantscopeConfig,
  options: EvidenceOptions,
): Promise<EvidenceReport> {
  const cfg = config.check;
  if (!cfg)
    throw cliError('CLI_CONFIG_INVALID', 'check: the evidence report needs the check section (tenants, credentials)');
  const ev: EvidenceConfig = config.evidence ?? {
    flood: { concurrency: 16, samples: 40, maxSlowdown: 3 },
  };
  const generatedAt = new Date();
  const items = new Items();
  const base = options.command;

  // 1. The isolation checks, each one an item.
  const report = await runCheck(url, cfg, { onProgress: options.onProgress });
  const byId = new Map<string, string>();
  for (const r of report.results) {
    if (r.status === 'skip') continue;
    byId.set(
      r.id,
      items.add({
        id: `check.${r.id}`,
        title: r.title,
        status: r.status === 'pass' ? 'pass' : 'fail',
        summary: r.detail,
        timestamp: r.startedAt,
        command: `${base.replace(/^tenantscope evidence/, 'tenantscope check')} --only ${r.id} --json`,
        raw: r,
      }),
    );
  }
  const skipped = new Map(report.results.filter((r) => r.status === 'skip').map((r) => [r.id, r.detail]));
  const ids = (prefix: string) =>
    [...byId.entries()].filter(([k]) => k === prefix || k.startsWith(`${prefix}.`)).map(([, v]) => v);

  // 2. The ACL table per tenant, as the target shows it.
  const visible = report.results.filter((r) => r.id.startsWith('tools.visible.'));
  const acl = visible.length
    ? items.add({
        id: 'acl-table',
        title: 'tool ACL per tenant, as tools/list shows it',
        status: visible.every((r) => r.status === 'pass') ? 'pass' : 'fail',
        summary: Object.entries(report.observedTools)
          .map(([t, tools]) => `${t}: ${tools.length} tools`)
          .join(', '),
        timestamp: visible[0]?.startedAt ?? generatedAt.toISOString(),
        command: `${base.replace(/^tenantscope evidence/, 'tenantscope check')} --only tools.visible --json`,
        raw: {
          expected: Object.fromEntries(Object.entries(cfg.tenants).map(([t, v]) => [t, v.tools])),
          observed: report.observedTools,
        },
      })
    : null;

  // 3. Audit: chain verification and alerts raised in the period.
  const chain = await auditChain(cfg, items, generatedAt, base);
  const alerts = await auditAlerts(cfg, items, generatedAt);

  // 4. Flood: one tenant floods, another's latency is measured (EU AI Act Art. 15).
  const flood = await floodDrill(url, cfg, ev, items).catch((err: Error) =>
    items.add({
      id: 'flood',
      title: 'one tenant floods, another tenant is measured',
      status: 'fail',
      summary: `could not run: ${err.message}`,
      timestamp: new Date().toISOString(),
      command: base,
      raw: { error: err.message },
    }),
  );

  // 5. Halt drill (EU AI Act Art. 14), only where the target offers an admin API.
  const halt = ev.admin ? await haltDrill(url, cfg, ev.admin, items) : null;

  const na = (what: string, why: string): ControlPart => ({ what, items: [], notAvailable: why });
  const part = (what: string, list: (string | null | undefined)[], why: string): ControlPart => {
    const got = list.filter((x): x is string => typeof x === 'string');
    return got.length ? { what, items: got } : na(what, why);
  };
  const why = (id: string) => skipped.get(id) ?? 'not run';
  const auditWhy = cfg.audit ? 'the audit location could not be read' : 'no check.audit location configured';
  const controls: Omit<Control, 'status'>[] = [
    {
      id: 'CC6.1',
      framework: 'SOC 2',
      name: 'Logical access: token scoping and verifier configuration',
      parts: [
        part(
          'missing token refused, protected resource metadata (RFC 9728)',
          ids('tokens.missing'),
          why('tokens.missing'),
        ),
        part(
          'bad tokens refused (signature, alg, HS/RS, expiry, nbf, aud, iss, lifetime, forged claims)',
          ids('tokens').filter((i) => !i.endsWith('tokens.missing')),
          'no token check ran',
        ),
      ],
    },
    {
      id: 'CC6.3',
      framework: 'SOC 2',
      name: 'Role-based access: tool ACL per tenant',
      parts: [
        part('ACL table per tenant', [acl], 'tools/list did not run'),
        part(
          "another tenant's tool answered like an unknown tool",
          ids('tools.foreign-like-unknown'),
          'no foreign tool configured',
        ),
      ],
    },
    {
      id: 'CC6.6',
      framework: 'SOC 2',
      name: 'Boundary protection: tenant identity only from the credential',
      parts: [
        part('tenant id in arguments refused or ignored', ids('tools.tenant-argument'), 'not run'),
        part("another tenant's token on a session refused", ids('sessions'), why('sessions.cross-tenant')),
        ...(cfg.probes.length ? [part('declared probes', ids('probes'), 'no probe ran')] : []),
      ],
    },
    {
      id: 'CC7.2',
      framework: 'SOC 2',
      name: 'Monitoring: anomaly rules and alerts',
      parts: [
        part('alerts raised in the period (from the audit log)', [alerts], auditWhy),
        na('anomaly rules configured', 'the target does not expose its anomaly rules to a client; not gathered'),
      ],
    },
    {
      id: 'Art. 25',
      framework: 'GDPR',
      name: 'Data protection by default: isolation by default',
      parts: [
        part('isolation checks against the running target', [...ids('tools'), ...ids('sessions')], 'not run'),
        na('doctor results for every store', 'needs `tenantscope doctor` (the DSAR CLI), not in this build'),
      ],
    },
    {
      id: 'Art. 15 / 17',
      framework: 'GDPR',
      name: 'Access and erasure: export and erase drills',
      parts: [
        na(
          'export and erase drills',
          'not available: the DSAR commands (tenant export / delete) are not in this build',
        ),
      ],
    },
    {
      id: 'Art. 30 / AI Act Art. 12',
      framework: 'GDPR / EU AI Act',
      name: 'Records and logging: audit completeness, chain, retention',
      parts: [
        part('audit completeness: N calls, exact counts, right streams', ids('audit'), why('audit.streams')),
        part('hash-chain verification', [chain], auditWhy),
        ev.retentionDays
          ? {
              what: 'retention setting',
              items: [
                items.add({
                  id: 'retention',
                  title: 'retention setting, as declared in the config (not read from the target)',
                  status: 'info',
                  summary: `${ev.retentionDays} days (declared)`,
                  timestamp: generatedAt.toISOString(),
                  command: base,
                  raw: { retentionDays: ev.retentionDays, source: 'evidence.retentionDays in the config' },
                }),
              ],
              notAvailable: 'declared in the config, not read from the target',
            }
          : na('retention setting', 'not declared (evidence.retentionDays) and not readable from the target'),
      ],
    },
    {
      id: 'AI Act Art. 14',
      framework: 'EU AI Act',
      name: 'Human oversight: live halt drill',
      parts: [
        part(
          'halt, refused, resume, served, with timings',
          [halt],
          'not available: the target offers no admin endpoint for a halt (configure evidence.admin)',
        ),
      ],
    },
    {
      id: 'AI Act Art. 15',
      framework: 'EU AI Act',
      name: "Robustness: limits, one tenant's flood does not slow another",
      parts: [part("flood measured: another tenant's latency", [flood], 'not run')],
    },
  ];
  const itemStatus = new Map(items.list.map((i) => [i.id, i.status]));
  const full: Control[] = controls.map((c) => {
    const all = c.parts.flatMap((p) => p.items);
    let status: ControlStatus;
    if (all.some((i) => itemStatus.get(i) === 'fail')) status = 'failed';
    else if (all.length === 0) status = 'not available';
    else if (c.parts.some((p) => p.notAvailable) || all.every((i) => itemStatus.get(i) === 'info')) status = 'partial';
    else status = 'met';
    return { ...c, status };
  });
  const n = (s: ControlStatus) => full.filter((c) => c.status === s).length;
  const headline = {
    controls: full.length,
    met: n('met'),
    failed: n('failed'),
    partial: n('partial'),
    notAvailable: n('not available'),
    checksPassed: report.summary.pass,
    checksFailed: report.summary.fail + report.summary.warn,
    text: '',
  };
  headline.text = `${headline.controls} controls: ${headline.met} met, ${headline.failed} failed, ${headline.partial} partial, ${headline.notAvailable} not available; checks: ${headline.checksPassed} passed, ${headline.checksFailed} failed`;
  const evidence: EvidenceReport = {
    tool: 'tenantscope evidence',
    version: VERSION,
    target: url,
    generatedAt: generatedAt.toISOString(),
    command: base,
    headline,
    controls: full,
    items: items.list,
    files: [],
  };
  await mkdir(join(options.out, 'raw'), { recursive: true });
  for (const i of items.list) await writeFile(join(options.out, i.rawFile), i.raw);
  const files = ['evidence.json', 'evidence.md', 'evidence.html'].map((f) => join(options.out, f));
  evidence.files = files;
  await writeFile(files[0] as string, `${JSON.stringify(evidence, null, 2)}\n`);
  await writeFile(files[1] as string, renderMarkdown(evidence));
  await writeFile(files[2] as string, renderHtml(evidence));
  return evidence;
}

type AuditStoreClass = new (o: { pool: pg.Pool; schema?: string }) => { verify(): Promise<VerifyReport> };

/**
 * The audit package's Postgres store, from its `./postgres` entry where the package has one, else
 * from its main entry (the specifier is a variable so either layout type-checks).
 */
async function postgresAuditStore(): Promise<AuditStoreClass> {
  for (const spec of ['@tenantscope/audit/postgres', '@tenantscope/audit']) {
    const mod = (await import(spec).catch(() => null)) as { PostgresAuditStore?: AuditStoreClass } | null;
    if (mod?.PostgresAuditStore) return mod.PostgresAuditStore;
  }
  throw new Error('@tenantscope/audit has no PostgresAuditStore');
}

const EMPTY_ANCHORS: AnchorStore = { record: async () => undefined, list: async () => [] };

async function auditChain(cfg: CheckConfig, items: Items, at: Date, base: string): Promise<string | null> {
  const loc = cfg.audit;
  if (!loc) return null;
  const common = { title: 'audit hash-chain verification', timestamp: at.toISOString() };
  try {
    if ('jsonlDir' in loc) {
      const report = await verifyJsonl({ dir: loc.jsonlDir, anchors: EMPTY_ANCHORS });
      if (report.streams.length === 0) {
        return items.add({
          ...common,
          id: 'audit-chain',
          status: 'info',
          summary: 'no hash-chained streams (<tenant>/<day>.jsonl) in the directory: nothing to verify',
          command: `${base} (verifyJsonl({ dir: ${JSON.stringify(loc.jsonlDir)} }) from @tenantscope/audit)`,
          raw: report,
        });
      }
      return items.add({
        ...common,
        id: 'audit-chain',
        status: report.ok ? 'pass' : 'fail',
        summary: `${report.streams.length} streams, ${report.ok ? 'every chain intact' : 'a chain is broken'} (no anchors given: a cut tail is not detectable)`,
        command: `${base} (verifyJsonl({ dir: ${JSON.stringify(loc.jsonlDir)} }) from @tenantscope/audit)`,
        raw: report,
      });
    }
    const pool = new pg.Pool({ connectionString: loc.postgresUrl, max: 2, connectionTimeoutMillis: 5000 });
    try {
      const Store = await postgresAuditStore();
      const report = await new Store({ pool, schema: loc.schema }).verify();
      return items.add({
        ...common,
        id: 'audit-chain',
        status: report.ok ? 'pass' : 'fail',
        summary: `${report.streams.length} streams, ${report.ok ? 'every chain intact, anchors included' : 'a chain is broken'}`,
        command: `${base} (PostgresAuditStore.verify() on ${describeLocation(loc)})`,
        raw: report,
      });
    } finally {
      await pool.end();
    }
  } catch (err) {
    return items.add({
      ...common,
      id: 'audit-chain',
      status: 'fail',
      summary: `verification could not run: ${(err as Error).message}`,
      command: `${base} (verify ${describeLocation(loc)})`,
      raw: { error: (err as Error).message },
    });
  }
}

async function auditAlerts(cfg: CheckConfig, items: Items, since: Date): Promise<string | null> {
  if (!cfg.audit) return null;
  try {
    const events = (await readAudit(cfg.audit, new Date(since.getTime() - 1000))).filter(
      (e) => e.event_type === 'anomaly_alert',
    );
    const byKind: Record<string, number> = {};
    for (const e of events) byKind[e.reason ?? 'unknown'] = (byKind[e.reason ?? 'unknown'] ?? 0) + 1;
    return items.add({
      id: 'alerts',
      title: 'anomaly alerts raised while the evidence was gathered',
      status: 'info',
      summary: events.length
        ? Object.entries(byKind)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ')
        : 'none raised',
      timestamp: new Date().toISOString(),
      command: `read event_type = anomaly_alert since ${since.toISOString()} from ${describeLocation(cfg.audit)}`,
      raw: { since: since.toISOString(), alerts: events },
    });
  } catch {
    return null;
  }
}

async function tokenFor(url: string, cfg: CheckConfig, tenant: string): Promise<string> {
  const t = cfg.tenants[tenant];
  if (t?.token) return t.token;
  if (t?.tokenEnv && process.env[t.tokenEnv]) return process.env[t.tokenEnv] as string;
  if (cfg.auth) return (await createMinter(cfg.auth, url)).mint(tenant, t?.subject ? { subject: t.subject } : {});
  throw cliError('CLI_CONFIG_INVALID', `check.tenants.${tenant}: the drills need a token or check.auth`);
}

const probe = (cfg: CheckConfig, tenant: string) => {
  const t = cfg.tenants[tenant];
  return t?.probeCall ?? { name: t?.tools[0] as string, arguments: {} };
};

async function timedCall(
  client: Client,
  call: { name: string; arguments: Record<string, unknown> },
): Promise<{ ms: number; ok: boolean }> {
  const t0 = performance.now();
  try {
    const r = await client.callTool(call);
    return { ms: performance.now() - t0, ok: r.isError !== true };
  } catch {
    return { ms: performance.now() - t0, ok: false };
  }
}

/** Quiet and flood phases alternate this many times. */
const FLOOD_ROUNDS = 2;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function floodDrill(url: string, cfg: CheckConfig, ev: EvidenceConfig, items: Items): Promise<string> {
  const [flooder, victim] = Object.keys(cfg.tenants) as [string, string];
  const http = new Http(url, cfg.timeoutMs);
  const v = await http.client(await tokenFor(url, cfg, victim));
  const f = await http.client(await tokenFor(url, cfg, flooder));
  const vCall = probe(cfg, victim);
  const fCall = probe(cfg, flooder);
  const started = new Date().toISOString();
  try {
    // Warm-up on both sides, then interleaved rounds (quiet, flood, quiet, flood) so a change in the
    // machine's load during the run falls on both figures alike.
    for (let i = 0; i < 5; i++) {
      await timedCall(v, vCall);
      await timedCall(f, fCall);
    }
    const before: number[] = [];
    const during: number[] = [];
    let sent = 0;
    let refused = 0;
    const perRound = Math.max(1, Math.ceil(ev.flood.samples / FLOOD_ROUNDS));
    for (let round = 0; round < FLOOD_ROUNDS; round++) {
      for (let i = 0; i < perRound; i++) before.push((await timedCall(v, vCall)).ms);
      let stop = false;
      const workers = Array.from({ length: ev.flood.concurrency }, async () => {
        while (!stop) {
          const r = await timedCall(f, fCall);
          sent++;
          if (!r.ok) refused++;
        }
      });
      for (let i = 0; i < perRound; i++) during.push((await timedCall(v, vCall)).ms);
      stop = true;
      await Promise.all(workers);
    }
    const p50b = pct(before, 50);
    const p50d = pct(during, 50);
    const ratio = p50d / Math.max(p50b, 0.001);
    const ok = ratio <= ev.flood.maxSlowdown;
    const round = (x: number) => Math.round(x * 100) / 100;
    return items.add({
      id: 'flood',
      title: `${flooder} floods (${ev.flood.concurrency} in flight), ${victim}'s latency measured`,
      status: ok ? 'pass' : 'fail',
      summary: `${victim} p50 ${round(p50b)} ms before, ${round(p50d)} ms during (×${round(ratio)}, limit ×${ev.flood.maxSlowdown}); ${flooder} sent ${sent}, ${refused} refused by limits`,
      timestamp: started,
      command: `tenantscope evidence ${url} (flood: ${ev.flood.concurrency} × ${fCall.name} as ${flooder}, ${ev.flood.samples} × ${vCall.name} as ${victim})`,
      raw: {
        flooder,
        victim,
        concurrency: ev.flood.concurrency,
        samples: ev.flood.samples,
        rounds: FLOOD_ROUNDS,
        note: 'the flooding and the measured client share one process (this CLI); both talk to the target over loopback',
        beforeMs: before.map(round),
        duringMs: during.map(round),
        p50BeforeMs: round(p50b),
        p50DuringMs: round(p50d),
        p95BeforeMs: round(pct(before, 95)),
        p95DuringMs: round(pct(during, 95)),
        ratio: round(ratio),
        maxSlowdown: ev.flood.maxSlowdown,
        flooderCalls: sent,
        flooderRefused: refused,
      },
    });
  } finally {
    await v.close();
    await f.close();
  }
}

async function haltDrill(
  url: string,
  cfg: CheckConfig,
  admin: NonNullable<EvidenceConfig['admin']>,
  items: Items,
): Promise<string> {
  const token = process.env[admin.tokenEnv];
  const started = new Date().toISOString();
  const command = `POST ${admin.url}/halt {"tenant":"${admin.tenant}"}, call ${probe(cfg, admin.tenant).name}, POST ${admin.url}/resume, call again`;
  if (!token) {
    return items.add({
      id: 'halt-drill',
      title: 'halt drill',
      status: 'fail',
      summary: `${admin.tokenEnv} is not set`,
      timestamp: started,
      command,
      raw: { error: `${admin.tokenEnv} is not set` },
    });
  }
  const http = new Http(url, cfg.timeoutMs);
  const call = probe(cfg, admin.tenant);
  const steps: Record<string, unknown>[] = [];
  const post = async (what: 'halt' | 'resume') => {
    const t0 = performance.now();
    const res = await fetch(`${admin.url.replace(/\/$/, '')}/${what}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        tenant: admin.tenant,
        ...(what === 'halt' ? { reason: 'tenantscope evidence halt drill' } : {}),
      }),
      signal: AbortSignal.timeout(cfg.timeoutMs),
    });
    steps.push({ step: what, status: res.status, ms: Math.round(performance.now() - t0) });
    return res.ok;
  };
  const attempt = async (label: string) => {
    const t0 = performance.now();
    let ok = false;
    try {
      const c = await http.client(await tokenFor(url, cfg, admin.tenant));
      try {
        ok = (await timedCall(c, call)).ok;
      } finally {
        await c.close();
      }
    } catch {
      ok = false;
    }
    steps.push({ step: label, served: ok, ms: Math.round(performance.now() - t0) });
    return ok;
  };
  const halted = await post('halt');
  const refusedWhileHalted = halted ? !(await attempt('call while halted')) : false;
  const resumed = await post('resume'); // always, so a failed drill does not leave the tenant halted
  const servedAfter = resumed ? await attempt('call after resume') : false;
  const ok = halted && refusedWhileHalted && resumed && servedAfter;
  return items.add({
    id: 'halt-drill',
    title: `halt drill on ${admin.tenant}`,
    status: ok ? 'pass' : 'fail',
    summary: steps
      .map((s) => `${s.step}: ${'status' in s ? `HTTP ${s.status}` : s.served ? 'served' : 'refused'} (${s.ms} ms)`)
      .join(', '),
    timestamp: started,
    command,
    raw: { tenant: admin.tenant, steps },
  });
}

export type { CheckReport, CheckResult };
