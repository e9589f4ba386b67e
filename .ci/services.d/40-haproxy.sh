# shellcheck shell=bash
# Sourced by .ci/run. Makes Debian's HAProxy available for the three-replica end-to-end test
# (test/e2e/replicas-haproxy.test.ts), which starts its own haproxy on loopback ports with a
# generated config, and exports
#   HAPROXY_BIN   the haproxy binary
# Idempotent: an installed haproxy is reused. apt-get is bounded by `timeout`; a failure says so and
# returns non-zero (the caller runs with `set -e`, so CI stops loudly).
# Skip with TENANTSCOPE_SKIP_HAPROXY=1 (the test then skips and prints why).

tenantscope_haproxy() {
  if [ "${TENANTSCOPE_SKIP_HAPROXY:-}" = "1" ]; then
    echo "[haproxy] skipped (TENANTSCOPE_SKIP_HAPROXY=1)"
    return 0
  fi
  local bin
  bin="$(command -v haproxy || true)"
  [ -n "$bin" ] || { [ -x /usr/sbin/haproxy ] && bin=/usr/sbin/haproxy; }
  if [ -z "$bin" ]; then
    echo "[haproxy] installing haproxy from Debian"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || { echo "[haproxy] FAILED: apt-get update" >&2; return 1; }
    timeout 300 apt-get install -y -qq --no-install-recommends haproxy >/dev/null ||
      { echo "[haproxy] FAILED: apt-get install haproxy" >&2; return 1; }
    bin=/usr/sbin/haproxy
  fi
  local version
  # Whole output first: `| head -1` under pipefail fails when haproxy gets SIGPIPE.
  version="$(timeout 10 "$bin" -v 2>/dev/null)" || { echo "[haproxy] FAILED: $bin -v" >&2; return 1; }
  version="${version%%$'\n'*}"
  echo "[haproxy] ${version}"
  export HAPROXY_BIN="$bin"
}
tenantscope_haproxy
