/**
 * The configuration reference (docs/configuration.md), built from the option interfaces themselves
 * with the TypeScript compiler API: every property, its type, whether it is required, and its JSDoc.
 *   node scripts/config-reference.ts          rewrites docs/configuration.md
 * test/docs/configuration.test.ts fails when an option exists in the code and not in the page, or
 * the other way round (run this script to fix it).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..');

export interface Section {
  /** Heading, e.g. `createVerifier(options)`. */
  title: string;
  /** Source file, relative to the repository root. */
  file: string;
  /** Exported interface or type alias holding the options. */
  type: string;
  /** One or two sentences above the table. */
  intro: string;
}

export const SECTIONS: Section[] = [
  {
    title: '`createVerifier(options)`',
    file: 'packages/core/src/verifier.ts',
    type: 'VerifierOptions',
    intro: '`@tenantscope/core`. Verifies bearer tokens (JWT, via jose) and mints the `Tenant` principal.',
  },
  {
    title: '`createVerifier({ keys })`',
    file: 'packages/core/src/verifier.ts',
    type: 'KeySource',
    intro: 'Exactly one of these key sources (each row group is one alternative).',
  },
  {
    title: '`withApiKeys(jwtVerifier, options)`',
    file: 'packages/core/src/api-keys.ts',
    type: 'ApiKeyVerifierOptions',
    intro:
      '`@tenantscope/core`. A verifier that also accepts `Bearer tsk_…` API keys; every other token goes to `jwtVerifier`.',
  },
  {
    title: '`createApiKey(store, options)`',
    file: 'packages/core/src/api-keys.ts',
    type: 'CreateApiKeyOptions',
    intro: 'Creates a key and stores only its hash; the returned key is the only copy.',
  },
  {
    title: '`new PostgresApiKeyStore(pool, options)`',
    file: 'packages/postgres/src/api-keys.ts',
    type: 'PostgresApiKeyStoreOptions',
    intro: '`@tenantscope/postgres`. The API key table shared by replicas and `tenantscope keys`.',
  },
  {
    title: '`tenantScope(options)`',
    file: 'packages/core/src/server.ts',
    type: 'TenantScopeOptions',
    intro: '`@tenantscope/core`. The multi-tenant MCP server.',
  },
  {
    title: '`tenantScope({ limits })`',
    file: 'packages/core/src/server.ts',
    type: 'TenantScopeLimits',
    intro: 'Server-wide defaults and bounds. A tenant policy in the directory may override the per-tenant ones.',
  },
  {
    title: '`tenantScope({ unauthenticatedAudit })`',
    file: 'packages/core/src/refusal-audit.ts',
    type: 'UnauthenticatedAuditOptions',
    intro: 'Bounds the audit stream of refusals no tenant can be attributed to.',
  },
  {
    title: 'Tenant directory file: one tenant',
    file: 'packages/core/src/directory.ts',
    type: 'TenantPolicy',
    intro:
      '`loadTenantDirectory(path)` reads `{ "tenants": { "<tenant id>": <policy>, … } }`; `new StaticTenantDirectory({ "<tenant id>": <policy> })` takes the inner object. Tenant ids match `^[a-z0-9][a-z0-9_-]{0,62}$`; unknown keys in `limits` are refused.',
  },
  {
    title: 'Tenant directory file: `limits`',
    file: 'packages/core/src/directory.ts',
    type: 'TenantLimits',
    intro: 'Each a positive integer.',
  },
  {
    title: '`new JsonlAuditSink(options)`',
    file: 'packages/core/src/audit.ts',
    type: 'JsonlAuditSinkOptions',
    intro:
      "`@tenantscope/core`. Plain JSONL, no hashes: for development and tests. Use `@tenantscope/audit`'s sinks for a trail you must trust.",
  },
  {
    title: '`scopedPool(poolOrConfig, options)`',
    file: 'packages/postgres/src/scoped.ts',
    type: 'ScopedPoolOptions',
    intro:
      '`@tenantscope/postgres`. The first argument is a `pg.Pool` or a `pg.PoolConfig` (a config gets a pipelined pool).',
  },
  {
    title: '`scopedPool(…, { hot })`',
    file: 'packages/postgres/src/hot.ts',
    type: 'HotOptions',
    intro: 'Tenant-affine connections for hot tenants.',
  },
  {
    title: '`installTenantScope(admin, options)`',
    file: 'packages/postgres/src/sql.ts',
    type: 'InstallOptions',
    intro: 'Run as the schema owner.',
  },
  {
    title: '`installSideChannelGuards(superuser, options)`',
    file: 'packages/postgres/src/side-channels.ts',
    type: 'SideChannelGuardOptions',
    intro: 'Run once per database as a superuser.',
  },
  {
    title: '`tenantTableSql(options)`',
    file: 'packages/postgres/src/sql.ts',
    type: 'TenantTableOptions',
    intro: 'Run the returned SQL as the table owner.',
  },
  {
    title: '`scoped.doctor(options)`',
    file: 'packages/postgres/src/doctor.ts',
    type: 'DoctorOptions',
    intro: 'Start-up checks, as the application role.',
  },
  {
    title: '`new ChainedJsonlAuditSink(options)`',
    file: 'packages/audit/src/jsonl.ts',
    type: 'ChainedJsonlAuditSinkOptions',
    intro:
      '`@tenantscope/audit`. Hash-chained JSONL, one stream per tenant: use it (or the Postgres sink) when the trail must be verifiable.',
  },
  {
    title: '`ChainedJsonlAuditSink`/`PostgresAuditSink({ privacy })`',
    file: 'packages/audit/src/event.ts',
    type: 'PrivacyOptions',
    intro: 'Identity minimisation applied before events are chained.',
  },
  {
    title: '`new PostgresAuditSink(options)`',
    file: 'packages/audit/src/postgres/sink.ts',
    type: 'PostgresAuditSinkOptions',
    intro: '`@tenantscope/audit`. Hash-chained, append-only Postgres table.',
  },
  {
    title: '`scopedS3(client, options)`',
    file: 'packages/s3/src/client.ts',
    type: 'ScopedS3Options',
    intro: '`@tenantscope/s3`. The first argument is your `S3Client`.',
  },
  {
    title: '`scopedQdrant(client, options)`',
    file: 'packages/qdrant/src/client.ts',
    type: 'ScopedQdrantOptions',
    intro: '`@tenantscope/qdrant`. The first argument is your `QdrantClient`.',
  },
  {
    title: '`scopedSecrets(options)`',
    file: 'packages/secrets/src/injector.ts',
    type: 'ScopedSecretsOptions',
    intro: '`@tenantscope/secrets`. `ctx.secrets`.',
  },
  {
    title: '`awsSecretsManager(options)`',
    file: 'packages/secrets/src/aws.ts',
    type: 'AwsSecretsManagerOptions',
    intro: '`@tenantscope/secrets`. AWS Secrets Manager provider.',
  },
  {
    title: '`postgresSecrets(options)`',
    file: 'packages/secrets/src/postgres.ts',
    type: 'PostgresSecretsOptions',
    intro: '`@tenantscope/secrets`. Envelope-encrypted secrets in Postgres.',
  },
];

export interface OptionRow {
  /** Dotted for inline nested objects (`tenantOverride.mode`); `variant N:` groups for unions. */
  name: string;
  type: string;
  required: boolean;
  doc: string;
  /** For a union of object types: which alternative (1-based). */
  variant?: number;
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();

function jsDocOf(node: ts.Node): string {
  const parts: string[] = [];
  for (const d of ts.getJSDocCommentsAndTags(node)) {
    if (ts.isJSDoc(d)) parts.push(ts.getTextOfJSDocComment(d.comment) ?? '');
  }
  if (parts.join('').trim() === '') {
    // A JSDoc inside a one-line type literal (`{ /** … */ jwksFile: string }`) is not attached.
    const sf = node.getSourceFile();
    const ranges = [
      ...(ts.getLeadingCommentRanges(sf.text, node.pos) ?? []),
      ...(ts.getTrailingCommentRanges(sf.text, node.pos) ?? []),
    ];
    for (const r of ranges) {
      const text = sf.text.slice(r.pos, r.end);
      if (text.startsWith('/**')) parts.push(text.slice(3, -2).replace(/^\s*\* ?/gm, ''));
    }
  }
  return oneLine(parts.join(' ')).replace(/\{@link\s+([^}\s]+)\s*\}/g, '`$1`');
}

function membersOf(
  type: ts.TypeNode | undefined,
  sf: ts.SourceFile,
  prefix: string,
  out: OptionRow[],
  variant?: number,
): void {
  if (!type) return;
  if (ts.isTypeLiteralNode(type)) {
    for (const m of type.members) addMember(m, sf, prefix, out, variant);
  }
}

function addMember(m: ts.TypeElement, sf: ts.SourceFile, prefix: string, out: OptionRow[], variant?: number): void {
  if (!ts.isPropertySignature(m) || !m.name) return;
  const name = `${prefix}${m.name.getText(sf)}`;
  const t = m.type;
  const literal = t && ts.isTypeLiteralNode(t);
  out.push({
    name,
    type: literal ? 'object' : oneLine(t?.getText(sf) ?? 'unknown'),
    required: !m.questionToken,
    doc: jsDocOf(m),
    ...(variant !== undefined ? { variant } : {}),
  });
  if (literal) membersOf(t, sf, `${name}.`, out, variant);
}

/** The options of one section, read from its source file. */
export function optionsOf(section: Section): OptionRow[] {
  const path = join(root, section.file);
  const sf = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: OptionRow[] = [];
  let found = false;
  const visit = (node: ts.Node, owner: string) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === owner) {
      found = true;
      for (const h of node.heritageClauses ?? []) {
        for (const t of h.types) {
          const parent = t.expression.getText(sf);
          const before = out.length;
          for (const s of sf.statements) visit(s, parent);
          if (out.length === before)
            throw new Error(`${section.type} extends ${parent}, which is not in ${section.file}`);
        }
      }
      for (const m of node.members) addMember(m, sf, '', out);
    } else if (ts.isTypeAliasDeclaration(node) && node.name.text === owner) {
      found = true;
      const t = node.type;
      if (ts.isUnionTypeNode(t)) {
        t.types.forEach((u, i) => {
          membersOf(u, sf, '', out, i + 1);
        });
      } else membersOf(t, sf, '', out);
    }
  };
  for (const s of sf.statements) visit(s, section.type);
  if (!found) throw new Error(`${section.type} is not declared in ${section.file}`);
  return out;
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function renderSection(section: Section): string {
  const rows = optionsOf(section);
  const lines = [
    `## ${section.title}`,
    '',
    `<!-- options: ${section.file} ${section.type} -->`,
    `${section.intro} Source: \`${section.type}\` in [\`${section.file}\`](../${section.file}).`,
    '',
    '| option | type | required | what |',
    '| --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const name = r.variant !== undefined ? `${r.variant}: \`${r.name}\`` : `\`${r.name}\``;
    lines.push(`| ${name} | \`${cell(r.type)}\` | ${r.required ? 'yes' : 'no'} | ${cell(r.doc)} |`);
  }
  return lines.join('\n');
}

export function renderConfigReference(): string {
  return `# Configuration reference

<!-- Generated by \`node scripts/config-reference.ts\` from the option interfaces; test/docs/configuration.test.ts
     fails when this page and the code disagree on any option. Do not edit the tables by hand. -->

Every option a tenantscope server is configured with, read from the TypeScript declarations. Dotted
names are fields of an inline object (\`tenantOverride.mode\`); numbered rows are alternatives (\`keys\`).
Defaults are in the descriptions. For a walk-through, see [quickstart.md](quickstart.md).

${SECTIONS.map(renderSection).join('\n\n')}
`;
}

if (import.meta.filename === process.argv[1]) {
  const target = join(root, 'docs/configuration.md');
  writeFileSync(target, renderConfigReference());
  console.log(`wrote ${target}`);
}
