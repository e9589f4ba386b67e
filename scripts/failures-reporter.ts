/**
 * A vitest reporter that names every failure on its own line, as it happens, in the file named by
 * TENANTSCOPE_FAILURES_FILE (scripts/test.sh prints that file at the end of its output, and CI's
 * .ci/run collects it per pass):
 *   FAILED TEST: <file> > <suite> > <test>: <first line of the error>
 *   FAILED TEST: <file> (the file failed outside a test): <first line>   (a hook, an import, a worker crash)
 *   FAILED TEST: (unhandled error) <file or "no test file">: <first line>  (vitest fails the run for it)
 *   FAILED TEST: <file> (still running when the run was stopped)          (SIGTERM/SIGINT, e.g. CI's time limit)
 * Lines are appended synchronously, so what failed before a run is killed is already in the file.
 */
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, SerializedError, TestCase, TestModule } from 'vitest/node';

const firstLine = (e: { message?: unknown; name?: unknown } | undefined): string =>
  String(e?.message ?? e?.name ?? 'no error message')
    .split('\n')[0]
    ?.slice(0, 300) ?? '';

export default class FailuresReporter implements Reporter {
  readonly #file = process.env.TENANTSCOPE_FAILURES_FILE;
  readonly #running = new Set<string>();
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    for (const m of this.#running) this.#write(`FAILED TEST: ${m} (still running when the run was stopped)`);
    this.#running.clear();
    // vitest's own handler exits; this only makes sure a signal still ends the run.
    setTimeout(() => process.exit(signal === 'SIGINT' ? 130 : 143), 2000).unref();
  };

  #write(line: string): void {
    if (this.#file) appendFileSync(this.#file, `${line}\n`);
    else process.stdout.write(`${line}\n`);
  }

  #rel(id: string): string {
    return relative(process.cwd(), id);
  }

  onInit(): void {
    process.prependListener('SIGTERM', this.#onSignal);
    process.prependListener('SIGINT', this.#onSignal);
  }

  onTestModuleStart(m: TestModule): void {
    this.#running.add(this.#rel(m.moduleId));
  }

  onTestCaseResult(t: TestCase): void {
    const r = t.result();
    if (r.state !== 'failed') return;
    this.#write(`FAILED TEST: ${this.#rel(t.module.moduleId)} > ${t.fullName}: ${firstLine(r.errors?.[0])}`);
  }

  onTestModuleEnd(m: TestModule): void {
    this.#running.delete(this.#rel(m.moduleId));
    const errors = m.errors();
    if (errors.length > 0 || (m.state() === 'failed' && [...m.children.allTests('failed')].length === 0)) {
      this.#write(`FAILED TEST: ${this.#rel(m.moduleId)} (the file failed outside a test): ${firstLine(errors[0])}`);
    }
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): void {
    for (const e of unhandled) {
      const where = (e as { VITEST_TEST_PATH?: string }).VITEST_TEST_PATH;
      this.#write(`FAILED TEST: (unhandled error) ${where ? this.#rel(where) : 'no test file'}: ${firstLine(e)}`);
    }
    process.off('SIGTERM', this.#onSignal);
    process.off('SIGINT', this.#onSignal);
  }
}
