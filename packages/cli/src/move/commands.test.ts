/**
 * `tenant move`'s command line, in process: bad usage exits 2 before any config is read or any
 * store is contacted (the config path here does not exist).
 */
import { describe, expect, it } from 'vitest';
import { main } from '../cli.ts';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await main(args, { stdout: () => undefined, stderr: (s) => (err += s), isTTY: false });
  return { code, err };
}

const base = ['tenant', 'move', 'acme', '--config', '/nonexistent/tenantscope.config.json'];

describe('tenant move: usage', () => {
  it.each([
    [[...base, '--store', 'postgres', '--to', 'dedicated'], '--target is required'],
    [[...base, '--store', 'postgres', '--to', 'shared', '--target', 'x'], '--target is required'],
    [[...base, '--store', 'postgres', '--to', 'dedicated', '--target', 'x', '--settle-ms', 'soon'], '--settle-ms'],
    [[...base, '--store', 'mongo', '--to', 'dedicated'], 'mongo'],
    [[...base, '--store', 'postgres', '--to', 'platinum'], 'platinum'],
    [['tenant', 'move', 'acme', '--to', 'shared'], '--store'],
  ])('%j exits 2', async (args, text) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(text);
  });
});
