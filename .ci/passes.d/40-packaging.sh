# shellcheck shell=bash
# Sourced by .ci/run, once (not per runtime: it runs the consumer app on Node 22 and 24 itself).
# test/packaging/consumer.sh takes the tarballs of every package from `scripts/pack.sh --cached`
# (the main pass's quickstart test packed these same sources already, so they are reused), runs
# publint and attw on each, installs them with plain npm outside the workspace, compiles a consumer
# app under NodeNext and Bundler, runs it and the CLI's bin (`npx tenantscope --help`) on Node 22
# and 24. Its last line is "N passed, N failed".
echo "=== pass: packaging (time limit $(pass_limit packaging) s)"
run_limited packaging .tmp/pass-packaging.log bash test/packaging/consumer.sh
packaging_rc=$rc
grep -E '^FAIL ' .tmp/pass-packaging.log | sed -E 's/^/[packaging] /' >> .tmp/ci-failures.txt || true
packaging_line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' .tmp/pass-packaging.log | tail -1 || true)"
if [ -z "$packaging_line" ]; then
  echo "pass packaging: no summary line (exit ${packaging_rc})"
  total_failed=$((total_failed + 1))
else
  total_passed=$((total_passed + $(echo "$packaging_line" | sed -E 's/^([0-9]+) passed.*/\1/')))
  packaging_failed="$(echo "$packaging_line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')"
  total_failed=$((total_failed + packaging_failed))
  if [ "$packaging_rc" -ne 0 ] && [ "$packaging_failed" -eq 0 ]; then total_failed=$((total_failed + 1)); fi
fi
