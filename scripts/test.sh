#!/usr/bin/env bash
# The README's second command: installs what it needs, type-checks, lints, and runs every test
# against real services (see test/setup/services). Ends with a line "N passed, N failed".
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
mkdir -p .tmp
failed_checks=0
passed_checks=0
echo "== runtime: node $(node --version)"
# CI's later passes set TENANTSCOPE_SKIP_STATIC_CHECKS=1: the main pass already type-checked and
# linted these same sources, and neither result depends on the runtime or the services.
if [ "${TENANTSCOPE_SKIP_STATIC_CHECKS:-}" = "1" ]; then
  echo "== typecheck, README examples, lint: not run in this pass (TENANTSCOPE_SKIP_STATIC_CHECKS=1; the main pass ran them)"
else
  echo "== typecheck (tsc)"
  if tsc -p tsconfig.json; then passed_checks=$((passed_checks + 1)); else failed_checks=$((failed_checks + 1)); fi
  echo "== README examples (tsc)"
  if node scripts/check-readme-examples.ts; then passed_checks=$((passed_checks + 1)); else failed_checks=$((failed_checks + 1)); fi
  echo "== lint (biome)"
  if biome lint --diagnostic-level=error .; then passed_checks=$((passed_checks + 1)); else failed_checks=$((failed_checks + 1)); fi
fi
echo "== tests (vitest)"
set +e
vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json "$@"
vitest_rc=$?
set -e
summary="$(node -e '
  const fs = require("fs");
  let r = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0 };
  try { r = JSON.parse(fs.readFileSync(".tmp/vitest.json", "utf8")); } catch {}
  const p = r.numPassedTests + Number(process.argv[1]);
  const f = r.numFailedTests + Number(process.argv[2]);
  const s = r.numPendingTests + r.numTodoTests;
  console.log(`${p} ${f} ${s} ${r.numTotalTests ?? 0}`);
' "$passed_checks" "$failed_checks")"
read -r passed failed skipped total <<<"$summary"
# Names every failed test on its own line ("FAILED TEST: file > suite > test: first line of the
# error"), so the end of a long log (and .ci/run's closing summary) says what failed.
node -e '
  const fs = require("fs");
  let r = { testResults: [] };
  try { r = JSON.parse(fs.readFileSync(".tmp/vitest.json", "utf8")); } catch {}
  for (const file of r.testResults ?? []) {
    const rel = String(file.name ?? "").replace(process.cwd() + "/", "");
    const failed = (file.assertionResults ?? []).filter((a) => a.status === "failed");
    for (const a of failed) {
      const why = String((a.failureMessages ?? [])[0] ?? "").split("\n")[0].slice(0, 300);
      console.log(`FAILED TEST: ${rel} > ${a.fullName}: ${why}`);
    }
    if (failed.length === 0 && file.status === "failed") {
      console.log(`FAILED TEST: ${rel} (the file failed outside a test): ${String(file.message ?? "").split("\n")[0].slice(0, 300)}`);
    }
  }
'
if [ "$vitest_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
rc=0
if [ "$failed" -ne 0 ] || [ "$vitest_rc" -ne 0 ] || [ "$total" -eq 0 ]; then rc=1; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
