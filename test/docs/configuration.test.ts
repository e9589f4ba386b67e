/**
 * docs/configuration.md cannot drift from the code: every option interface it covers is read with
 * the TypeScript compiler API (scripts/config-reference.ts), and the page must list exactly those
 * options, no more and no fewer. Fix a failure with `node scripts/config-reference.ts`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { optionsOf, renderSection, SECTIONS } from '../../scripts/config-reference.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const page = readFileSync(join(root, 'docs/configuration.md'), 'utf8');
const FIX =
  'run `node scripts/config-reference.ts` (under scripts/with-toolchain.sh) to regenerate docs/configuration.md';

/** Option names per `<!-- options: FILE TYPE -->` marker, as the page lists them. */
function pageSections(markdown: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^<!-- options: (\S+) (\S+) -->$/.exec(line);
    if (marker) {
      current = [];
      out.set(`${marker[1]} ${marker[2]}`, current);
    } else if (line.startsWith('## ')) current = undefined;
    else if (current) {
      const row = /^\| (?:(\d+): )?`([^`]+)` \|/.exec(line);
      if (row) current.push(row[1] ? `${row[1]}: ${row[2]}` : (row[2] as string));
    }
  }
  return out;
}

describe('docs/configuration.md matches the option types', () => {
  const documented = pageSections(page);

  it('covers exactly the configured sections', () => {
    expect([...documented.keys()].sort(), FIX).toEqual(SECTIONS.map((s) => `${s.file} ${s.type}`).sort());
  });

  for (const section of SECTIONS) {
    it(`${section.type} (${section.file}): every option, and nothing else`, () => {
      const names = optionsOf(section).map((r) => (r.variant !== undefined ? `${r.variant}: ${r.name}` : r.name));
      expect(names.length).toBeGreaterThan(0);
      expect(documented.get(`${section.file} ${section.type}`), FIX).toEqual(names);
    });
  }

  it('the checker itself sees a missing or an extra option', () => {
    const section = SECTIONS.find((s) => s.type === 'VerifierOptions');
    if (!section) throw new Error('VerifierOptions section missing');
    const rendered = pageSections(renderSection(section)).get(`${section.file} ${section.type}`) ?? [];
    expect(rendered).toContain('tenantClaim');
    const dropped = renderSection(section).replace(/^\| `tenantClaim` \|.*\n/m, '');
    expect(pageSections(dropped).get(`${section.file} ${section.type}`)).not.toContain('tenantClaim');
    expect(pageSections(dropped).get(`${section.file} ${section.type}`)).not.toEqual(rendered);
  });
});
