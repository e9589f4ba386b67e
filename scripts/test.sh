#!/usr/bin/env bash
# The README's second command: installs what it needs, type-checks, lints, and runs every test
# against real services (see test/setup/services). Ends with a line "N passed, N failed".
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
mkdir -p .tmp
# One report and one failures file per run (CI runs passes one after another; people run this
# side by side): a run that dies before writing its report must not be read with an older one's.
run_id="$$-$(date +%s)"
report=".tmp/vitest-${run_id}.json"
failures="${TENANTSCOPE_FAILURES_FILE:-.tmp/failures-${run_id}.txt}"
export TENANTSCOPE_FAILURES_FILE="$failures"
rm -f "$report"
: > "$failures"
trap 'rm -f "$report"; [ -n "${TENANTSCOPE_FAILURES_FILE_KEEP:-}" ] || rm -f "$failures"' EXIT
failed_checks=0
passed_checks=0
echo "== runtime: node $(node --version)"
# CI's later passes set TENANTSCOPE_SKIP_STATIC_CHECKS=1: the main pass already type-checked and
# linted these same sources, and neither result depends on the runtime or the services.
if [ "${TENANTSCOPE_SKIP_STATIC_CHECKS:-}" = "1" ]; then
  echo "== typecheck, README examples, lint: not run in this pass (TENANTSCOPE_SKIP_STATIC_CHECKS=1; the main pass ran them)"
else
  check() {
    local name="$1"; shift
    echo "== ${name}"
    if "$@"; then passed_checks=$((passed_checks + 1)); else
      failed_checks=$((failed_checks + 1))
      echo "FAILED TEST: (static check) ${name}: see its output above" >> "$failures"
    fi
  }
  check "typecheck (tsc)" tsc -p tsconfig.json
  check "README examples (tsc)" node scripts/check-readme-examples.ts
  check "lint (biome)" biome lint --diagnostic-level=error .
fi
echo "== tests (vitest)"
set +e
vitest run --reporter=default --reporter=json --outputFile.json="$report" --reporter=./scripts/failures-reporter.ts "$@"
vitest_rc=$?
set -e
summary="$(node -e '
  const fs = require("fs");
  let r = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0 };
  try { r = JSON.parse(fs.readFileSync(process.argv[3], "utf8")); } catch {}
  const p = r.numPassedTests + Number(process.argv[1]);
  const f = r.numFailedTests + Number(process.argv[2]);
  const s = r.numPendingTests + r.numTodoTests;
  console.log(`${p} ${f} ${s} ${r.numTotalTests ?? 0}`);
' "$passed_checks" "$failed_checks" "$report")"
read -r passed failed skipped total <<<"$summary"
# Names every failed test on its own line ("FAILED TEST: file > suite > test: first line of the
# error"; also a file that failed outside a test, an unhandled error, a failed static check), so the
# end of a long log (and .ci/run's closing summary) says what failed. scripts/failures-reporter.ts
# wrote them as they happened.
if [ "$vitest_rc" -ne 0 ] && ! grep -q '^FAILED TEST: ' "$failures"; then
  echo "FAILED TEST: (vitest) exited ${vitest_rc} and named no failed test; see its output above" >> "$failures"
fi
cat "$failures"
# A file that failed outside a test and an unhandled error count as failures too.
named="$(grep -c '^FAILED TEST: ' "$failures" || true)"
if [ "$named" -gt "$failed" ]; then failed="$named"; fi
rc=0
if [ "$failed" -ne 0 ] || [ "$vitest_rc" -ne 0 ] || [ "$total" -eq 0 ]; then rc=1; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
