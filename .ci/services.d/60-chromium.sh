# shellcheck shell=bash
# Sourced by .ci/run. Makes Debian's Chromium available for the evidence-report browser test
# (test/cli/evidence-browser.test.ts) and exports
#   CHROMIUM_PATH   the browser binary (/usr/bin/chromium)
# Idempotent: an installed chromium is reused. apt-get is bounded by `timeout`; a failure says so and
# returns non-zero (the caller runs with `set -e`, so CI stops loudly).
# Skip with TENANTSCOPE_SKIP_CHROMIUM=1 (the browser test then skips and prints why).

tenantscope_chromium() {
  if [ "${TENANTSCOPE_SKIP_CHROMIUM:-}" = "1" ]; then
    echo "[chromium] skipped (TENANTSCOPE_SKIP_CHROMIUM=1)"
    return 0
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "[chromium] installing chromium from Debian"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || { echo "[chromium] FAILED: apt-get update" >&2; return 1; }
    timeout 600 apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null ||
      { echo "[chromium] FAILED: apt-get install chromium" >&2; return 1; }
  fi
  local version
  version="$(timeout 30 /usr/bin/chromium --headless --no-sandbox --version 2>/dev/null)" ||
    { echo "[chromium] FAILED: /usr/bin/chromium --version" >&2; return 1; }
  echo "[chromium] ${version}"
  export CHROMIUM_PATH=/usr/bin/chromium
}
tenantscope_chromium
