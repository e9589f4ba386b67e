/**
 * Starts the real services the suites need, once per run, and hands their addresses to tests
 * through vitest's provide/inject. Each file in ./services/ resolves one service (env URL, else
 * testcontainers, else an embedded server or a named protocol double) and says which it used.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TestProject } from 'vitest/node';

export interface ServiceSetup {
  start(): Promise<{ provide: Record<string, unknown>; describe: string; stop(): Promise<void> }>;
}

const dir = join(dirname(fileURLToPath(import.meta.url)), 'services');
const stops: (() => Promise<void>)[] = [];

export async function setup(project: TestProject): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
  const started = await Promise.all(
    files.map(async (f) => {
      const mod = (await import(pathToFileURL(join(dir, f)).href)) as { service: ServiceSetup };
      return mod.service.start();
    }),
  );
  for (const s of started) {
    stops.push(() => s.stop());
    console.log(`[services] ${s.describe}`);
    for (const [k, v] of Object.entries(s.provide)) project.provide(k as never, v as never);
  }
}

export async function teardown(): Promise<void> {
  await Promise.allSettled(stops.map((s) => s()));
}
