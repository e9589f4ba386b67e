/**
 * Type-checks every ```ts block in the README files (root, packages/*, examples/*) and in docs/*.md,
 * so examples cannot rot. Each block is compiled as its own module; blocks marked ```ts nocheck are
 * skipped. An info string after `ts` (```ts file=server.ts) is allowed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const out = join(root, 'test', '.readme-examples');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const readmes = ['README.md'];
for (const dir of ['packages', 'examples']) {
  for (const name of readdirSync(join(root, dir))) {
    if (existsSync(join(root, dir, name, 'README.md'))) readmes.push(join(dir, name, 'README.md'));
  }
}
for (const name of readdirSync(join(root, 'docs'))) {
  if (name.endsWith('.md')) readmes.push(join('docs', name));
}
const files: string[] = [];
for (const readme of readmes) {
  const text = readFileSync(join(root, readme), 'utf8');
  const blocks = [...text.matchAll(/^```ts( [^\n]*)?\n([\s\S]*?)^```$/gm)].filter(
    (m) => !(m[1] ?? '').split(' ').includes('nocheck'),
  );
  blocks.forEach((m, i) => {
    const file = join(out, `${readme.replaceAll('/', '_').replace('.md', '')}_${i + 1}.ts`);
    writeFileSync(file, `// from ${readme}, block ${i + 1}\n${m[2]}\nexport {};\n`);
    files.push(file);
  });
}
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({ extends: '../../tsconfig.base.json', compilerOptions: { noEmit: true }, include: ['*.ts'] }),
);
console.log(`readme examples: type-checking ${files.length} blocks from ${readmes.length} READMEs`);
try {
  execFileSync('tsc', ['-p', join(out, 'tsconfig.json')], { stdio: 'inherit' });
} catch {
  process.exit(1);
}
