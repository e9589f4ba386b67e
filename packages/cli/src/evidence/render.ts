import type { ControlStatus, EvidenceReport } from './run.ts';

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const md = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

const LABEL: Record<ControlStatus, string> = {
  met: 'MET',
  failed: 'FAILED',
  partial: 'PARTIAL',
  'not available': 'NOT AVAILABLE',
};

/** The report as Markdown: headline, controls table, then every evidence item with its hash. */
export function renderMarkdown(r: EvidenceReport): string {
  const h = r.headline;
  const out = [
    '# tenantscope compliance evidence',
    '',
    `Target: \`${r.target}\`  `,
    `Generated: ${r.generatedAt} by \`${r.command}\` (tenantscope ${r.version})`,
    '',
    `**${h.text}**`,
    '',
    'A control is **met** only when every part has raw evidence below and every item passed;',
    '**partial** when some part could not be gathered; **not available** when none could.',
    '',
    '| framework | control | status | evidence |',
    '| --- | --- | --- | --- |',
  ];
  for (const c of r.controls) {
    const ev = c.parts
      .map(
        (p) =>
          `${md(p.what)}: ${p.items.map((i) => `[${i}](raw/${i}.txt)`).join(', ')}${p.notAvailable ? ` *${md(p.notAvailable)}*` : ''}`,
      )
      .join('<br>');
    out.push(`| ${c.framework} | ${c.id} ${md(c.name)} | ${LABEL[c.status]} | ${ev} |`);
  }
  out.push('', '## Evidence', '');
  for (const i of r.items) {
    out.push(
      `### ${i.id}`,
      '',
      `- **${i.status.toUpperCase()}** ${md(i.title)}: ${md(i.summary)}`,
      `- time: ${i.timestamp}`,
      `- command: \`${i.command.replace(/`/g, "'")}\``,
      `- ${i.sha256} of [${i.rawFile}](${i.rawFile})`,
      '',
    );
  }
  return `${out.join('\n')}\n`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#57606a;font-size:12px;margin-bottom:16px;word-break:break-all}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0 20px}
.tile{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:110px}
.tile b{display:block;font-size:24px}
.tile.met b{color:#1a7f37}.tile.failed b{color:#cf222e}.tile.partial b{color:#9a6700}.tile.na b{color:#57606a}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;vertical-align:top;padding:7px 9px;border-bottom:1px solid #eaeef2;font-size:13px}
th{background:#f0f3f6}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:11px;font-weight:700;white-space:nowrap}
.met,.pass{background:#dafbe1;color:#1a7f37}.failed,.fail{background:#ffebe9;color:#cf222e}
.partial,.info{background:#fff8c5;color:#9a6700}.not-available{background:#eaeef2;color:#57606a}
.tile.met,.tile.failed,.tile.partial,.tile.na{background:#fff}
.na-text{color:#57606a;font-style:italic}
section.item{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin:10px 0}
section.item h3{font-size:14px;margin:0 0 6px}
code,pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap;word-break:break-all}
dl{display:grid;grid-template-columns:90px 1fr;gap:2px 10px;margin:0;font-size:12px}dt{color:#57606a}dd{margin:0;word-break:break-all}
`;

/** One self-contained HTML page (inline CSS, no script, no external resource). */
export function renderHtml(r: EvidenceReport): string {
  const h = r.headline;
  const cls = (s: ControlStatus) => s.replace(' ', '-');
  const tile = (id: string, n: number, label: string, c = '') =>
    `<div class="tile ${c}"><b id="${id}" data-count="${n}">${n}</b>${esc(label)}</div>`;
  const rows = r.controls
    .map((c) => {
      const parts = c.parts
        .map(
          (p) =>
            `<div>${esc(p.what)}: ${p.items.map((i) => `<a class="ev" href="#ev-${esc(i)}">${esc(i)}</a>`).join(', ')}${
              p.notAvailable ? ` <span class="na-text">${esc(p.notAvailable)}</span>` : ''
            }</div>`,
        )
        .join('');
      return `<tr data-control="${esc(c.id)}" data-status="${esc(c.status)}"><td>${esc(c.framework)}</td><td><b>${esc(c.id)}</b><br>${esc(c.name)}</td><td><span class="badge ${cls(c.status)}">${LABEL[c.status]}</span></td><td>${parts}</td></tr>`;
    })
    .join('\n');
  const sections = r.items
    .map(
      (i) => `<section class="item" id="ev-${esc(i.id)}" data-status="${i.status}" data-sha256="${esc(i.sha256)}">
<h3><span class="badge ${i.status}">${i.status.toUpperCase()}</span> ${esc(i.id)}: ${esc(i.title)}</h3>
<p>${esc(i.summary)}</p>
<dl><dt>time</dt><dd>${esc(i.timestamp)}</dd><dt>command</dt><dd><code>${esc(i.command)}</code></dd><dt>hash</dt><dd><code>${esc(i.sha256)}</code> of <a class="raw" href="${esc(i.rawFile)}">${esc(i.rawFile)}</a></dd></dl>
<details><summary>raw output (${Buffer.byteLength(i.raw)} bytes)</summary><pre>${esc(i.raw)}</pre></details>
</section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>tenantscope evidence: ${esc(r.target)}</title><style>${CSS}</style></head>
<body><main>
<h1>tenantscope compliance evidence</h1>
<div class="meta">target <code>${esc(r.target)}</code> · generated ${esc(r.generatedAt)} · <code>${esc(r.command)}</code> · tenantscope ${esc(r.version)}</div>
<p id="headline">${esc(h.text)}</p>
<div class="tiles">
${tile('count-met', h.met, 'controls met', 'met')}
${tile('count-failed', h.failed, 'controls failed', 'failed')}
${tile('count-partial', h.partial, 'partial', 'partial')}
${tile('count-not-available', h.notAvailable, 'not available', 'na')}
${tile('count-checks-passed', h.checksPassed, 'checks passed', 'met')}
${tile('count-checks-failed', h.checksFailed, 'checks failed', 'failed')}
</div>
<p class="meta">A control is met only when every part has raw evidence on this page and every item passed; partial when a part could not be gathered; not available when none could. Each item carries the SHA-256 of its raw output (also in the raw/ file beside this page).</p>
<table><thead><tr><th>framework</th><th>control</th><th>status</th><th>evidence</th></tr></thead><tbody>
${rows}
</tbody></table>
<h2>Evidence (${r.items.length} items)</h2>
${sections}
</main></body></html>
`;
}
