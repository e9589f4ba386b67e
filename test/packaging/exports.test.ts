/**
 * Pins what users import: each package's export map (workspace and published), its peers, and
 * that the root entries of @tenantscope/secrets and @tenantscope/audit reach no optional backend.
 * A renamed or dropped subpath fails here before it breaks an app.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Manifest {
  name: string;
  exports: Record<string, unknown>;
  publishConfig?: { exports?: Record<string, unknown> };
  files?: string[];
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
}

function manifest(pkg: string): Manifest {
  return JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as Manifest;
}

/** Every public subpath, and the module (under src/, without extension) it maps to. */
const EXPORTS: Record<string, Record<string, string>> = {
  core: { '.': 'index', './express': 'express' },
  postgres: { '.': 'index' },
  qdrant: { '.': 'index' },
  s3: { '.': 'index' },
  secrets: { '.': 'index', './aws': 'aws', './postgres': 'postgres' },
  audit: { '.': 'index', './postgres': 'postgres/index', './otel': 'otel' },
  testkit: { '.': 'index', './adapter': 'adapter/index' },
  cli: { '.': 'index' },
};

function expectedMap(entries: Record<string, string>, dir: 'src' | 'dist'): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (const [subpath, module] of Object.entries(entries)) {
    map[subpath] =
      dir === 'src'
        ? { types: `./src/${module}.ts`, default: `./src/${module}.ts` }
        : { types: `./dist/${module}.d.ts`, default: `./dist/${module}.js` };
  }
  map['./package.json'] = './package.json';
  return map;
}

describe('export maps', () => {
  for (const [pkg, entries] of Object.entries(EXPORTS)) {
    it(`@tenantscope/${pkg} exports exactly ${Object.keys(entries).join(', ')}`, () => {
      const m = manifest(pkg);
      expect(m.name).toBe(`@tenantscope/${pkg}`);
      expect(m.exports).toEqual(expectedMap(entries, 'src'));
      expect(m.publishConfig?.exports).toEqual(expectedMap(entries, 'dist'));
      expect(m.files).toEqual(['dist']);
      for (const module of Object.values(entries)) {
        expect(existsSync(join(root, 'packages', pkg, 'src', `${module}.ts`)), `${pkg}/src/${module}.ts`).toBe(true);
      }
    });
  }
});

describe('the CLI bin', () => {
  it('runs from TypeScript sources in the workspace and from built JS (with its shebang) when published', () => {
    const m = manifest('cli') as Manifest & { publishConfig?: { bin?: Record<string, string> } };
    expect(m.bin).toEqual({ tenantscope: './src/bin.ts' });
    expect(m.publishConfig?.bin).toEqual({ tenantscope: './dist/bin.js' });
    expect(readFileSync(join(root, 'packages/cli/src/bin.ts'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(existsSync(join(root, 'packages/cli/tsconfig.build.json'))).toBe(true);
  });
});

describe('the adapter contract names (issue 15)', () => {
  /** Per adapter: entry, factory class or type guard, per-tenant class, errors, DSAR class. Values only (types are checked by tsc). */
  const NAMES: Record<string, string[]> = {
    postgres: ['scopedPool', 'ScopedPool', 'PG_ERROR_CODES', 'pgError', 'tenantData'],
    s3: ['scopedS3', 'TenantS3', 'S3_ERROR_CODES', 's3Error', 'S3_ERROR_STATUS', 'S3TenantData', 'TenantData'],
    qdrant: ['scopedQdrant', 'ScopedQdrant', 'QDRANT_ERROR_CODES', 'qdrantError', 'QdrantTenantData'],
    secrets: [
      'scopedSecrets',
      'SECRETS_ERROR_CODES',
      'secretsError',
      'secretsInjector',
      'SecretsInjector',
      'SECRET_ERROR_CODES',
      'secretError',
    ],
    testkit: ['codeOf', 'rejection'],
  };
  for (const [pkg, names] of Object.entries(NAMES)) {
    it(`@tenantscope/${pkg} exports ${names.join(', ')}`, async () => {
      const mod = (await import(`@tenantscope/${pkg}`)) as Record<string, unknown>;
      for (const name of names) expect(mod[name], name).toBeDefined();
    });
  }
  it('@tenantscope/testkit/adapter exports testAdapter and the checks as functions', async () => {
    const mod = (await import('@tenantscope/testkit/adapter')) as Record<string, unknown>;
    for (const name of ['testAdapter', 'runAdapterChecks', 'seedTenants', 'caught']) {
      expect(typeof mod[name], name).toBe('function');
    }
  });
});

describe('peers', () => {
  for (const pkg of ['postgres', 'qdrant', 's3', 'secrets', 'audit', 'testkit']) {
    it(`@tenantscope/${pkg} takes core as a peer (one brand registry per app), never as a dependency`, () => {
      const m = manifest(pkg);
      expect(m.dependencies?.['@tenantscope/core']).toBeUndefined();
      expect(m.peerDependencies?.['@tenantscope/core']).toBe('workspace:^');
      expect(m.peerDependenciesMeta?.['@tenantscope/core']?.optional).not.toBe(true);
      expect(m.devDependencies?.['@tenantscope/core']).toBe('workspace:*');
    });
  }

  const optional: Record<string, string[]> = {
    secrets: ['@aws-sdk/client-secrets-manager', 'pg', '@tenantscope/postgres'],
    audit: ['pg', '@opentelemetry/api'],
  };
  for (const [pkg, peers] of Object.entries(optional)) {
    it(`@tenantscope/${pkg}: ${peers.join(', ')} are optional peers, not dependencies`, () => {
      const m = manifest(pkg);
      for (const peer of peers) {
        expect(m.dependencies?.[peer], peer).toBeUndefined();
        expect(m.peerDependencies?.[peer], peer).toBeDefined();
        expect(m.peerDependenciesMeta?.[peer]?.optional, peer).toBe(true);
      }
    });
  }
});

/** Bare specifiers a module reaches through its relative imports (value and type imports alike). */
function reachableBareImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const bare = new Set<string>();
  const queue = [entry];
  const importRe = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(importRe)) {
      const spec = (match[1] ?? match[2]) as string;
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else bare.add(spec);
    }
  }
  return bare;
}

describe('root entries reach no optional backend', () => {
  const forbidden = /^(pg|pg-.*|@aws-sdk\/.*|@opentelemetry\/.*|@tenantscope\/postgres)$/;
  for (const pkg of ['secrets', 'audit']) {
    it(`@tenantscope/${pkg} (root) imports no pg, AWS SDK, OpenTelemetry or @tenantscope/postgres`, () => {
      const reached = [...reachableBareImports(join(root, 'packages', pkg, 'src', 'index.ts'))];
      expect(reached.filter((spec) => forbidden.test(spec))).toEqual([]);
      expect(reached).toContain('@tenantscope/core');
    });
  }

  it('the subpaths do reach their backends (the check above can see them)', () => {
    const reach = (pkg: string, module: string) =>
      reachableBareImports(join(root, 'packages', pkg, 'src', `${module}.ts`));
    expect(reach('secrets', 'aws')).toContain('@aws-sdk/client-secrets-manager');
    expect(reach('secrets', 'postgres')).toContain('@tenantscope/postgres');
    expect(reach('audit', 'postgres/index')).toContain('pg');
    expect(reach('audit', 'otel')).toContain('@opentelemetry/api');
  });
});
