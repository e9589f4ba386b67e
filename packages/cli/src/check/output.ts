import type { CheckReport, CheckResult, Status } from './run.ts';

const MARK: Record<Status, string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'SKIP' };
const COLOR: Record<Status, string> = { pass: '32', fail: '31', warn: '33', skip: '90' };

/** The human table: one line per check, then the totals. */
export function formatTable(report: CheckReport, color = false): string {
  const paint = (s: Status, text: string) => (color ? `\u001b[${COLOR[s]}m${text}\u001b[0m` : text);
  const idWidth = Math.min(44, Math.max(5, ...report.results.map((r) => r.id.length)));
  const lines = [
    `tenantscope check ${report.target} (${report.mode} mode${report.strict ? ', strict' : ''})`,
    '',
    `${'RESULT'.padEnd(6)}  ${'CHECK'.padEnd(idWidth)}  DETAIL`,
  ];
  for (const r of report.results) {
    lines.push(`${paint(r.status, MARK[r.status].padEnd(6))}  ${r.id.padEnd(idWidth)}  ${oneLine(r.detail, 110)}`);
  }
  const s = report.summary;
  lines.push(
    '',
    `${s.pass} passed, ${s.fail} failed, ${s.warn} warnings, ${s.skip} skipped — ${report.ok ? 'OK' : 'FAILED'}`,
  );
  return `${lines.join('\n')}\n`;
}

function oneLine(s: string, max: number): string {
  const t = s.replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

const xml = (s: string) =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    // XML 1.0 forbids most control characters
    .split('')
    .filter((c) => {
      const n = c.charCodeAt(0);
      return n >= 0x20 || n === 0x09 || n === 0x0a || n === 0x0d;
    })
    .join('');

/** JUnit XML: one testsuite per group, one testcase per check (warn is a failure in strict mode). */
export function formatJUnit(report: CheckReport): string {
  const groups = new Map<string, CheckResult[]>();
  for (const r of report.results) groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  const failed = (r: CheckResult) => r.status === 'fail' || (report.strict && r.status === 'warn');
  const secs = (ms: number) => (ms / 1000).toFixed(3);
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="tenantscope check" tests="${report.results.length}" failures="${report.results.filter(failed).length}" skipped="${report.summary.skip}">`,
  ];
  for (const [group, rs] of groups) {
    const time = rs.reduce((a, r) => a + r.durationMs, 0);
    out.push(
      `  <testsuite name="${xml(group)}" tests="${rs.length}" failures="${rs.filter(failed).length}" skipped="${rs.filter((r) => r.status === 'skip').length}" time="${secs(time)}" timestamp="${xml(rs[0]?.startedAt ?? report.startedAt)}">`,
    );
    for (const r of rs) {
      const head = `    <testcase classname="tenantscope.check.${xml(group)}" name="${xml(r.id)}" time="${secs(r.durationMs)}"`;
      if (failed(r)) {
        out.push(
          `${head}>`,
          `      <failure message="${xml(r.detail)}">${xml(`${r.title}\n${r.detail}`)}</failure>`,
          '    </testcase>',
        );
      } else if (r.status === 'skip') {
        out.push(`${head}>`, `      <skipped message="${xml(r.detail)}"/>`, '    </testcase>');
      } else if (r.status === 'warn') {
        out.push(`${head}>`, `      <system-out>${xml(`warning: ${r.detail}`)}</system-out>`, '    </testcase>');
      } else out.push(`${head}/>`);
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}

/** The JSON report. */
export function formatJson(report: CheckReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
