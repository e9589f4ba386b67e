# shellcheck shell=bash
# Sourced by .ci/run. Starts moto (a widely used AWS emulator; the `moto` 5.2.1 Python package,
# pip-installed only if `moto_server` is missing) on loopback for the Secrets Manager suites, and
# exports
#   SECRETS_MANAGER_ENDPOINT   http://127.0.0.1:<port> (read by @tenantscope/testkit's resolveSecretsManager)
# Idempotent: a moto already answering on the port is reused. Waits are bounded; a failure prints
# the server log tail and returns non-zero (the caller runs with `set -e`). The testkit's
# SecretsManagerProtocolDouble stays the local fallback and covers what moto cannot (IAM denials;
# see packages/secrets/README.md). Port: MOTO_PORT (default 45055). Skip with TENANTSCOPE_SKIP_MOTO=1.

tenantscope_moto() {
  local port="${MOTO_PORT:-45055}"
  local url="http://127.0.0.1:${port}"
  local log="${PWD}/.tmp/moto.log"
  _moto_fail() {
    echo "[moto] FAILED: $*" >&2
    tail -n 30 "$log" >&2 2>/dev/null || true
    return 1
  }
  _moto_up() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "${url}/moto-api/data.json" >/dev/null 2>&1
  }
  if ! _moto_up; then
    if ! command -v moto_server >/dev/null 2>&1; then
      echo "[moto] moto_server not found: pip-installing moto[server]==5.2.1"
      python3 -m pip install --quiet 'moto[server]==5.2.1' >"$log" 2>&1 || _moto_fail "pip install moto[server]==5.2.1" || return 1
      hash -r
    fi
    echo "[moto] starting moto_server on 127.0.0.1:${port}"
    # setsid + nohup: the server outlives this shell's job control and keeps running for every pass.
    setsid nohup moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 60; i++)); do
      if _moto_up; then break; fi
      sleep 0.5
    done
    [ "$i" -lt 60 ] || _moto_fail "moto_server did not answer on ${url} within 30 s" || return 1
  fi
  local version
  version="$(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown)"
  export SECRETS_MANAGER_ENDPOINT="$url"
  echo "[moto] moto ${version} ready; SECRETS_MANAGER_ENDPOINT=${url}"
}

if [ "${TENANTSCOPE_SKIP_MOTO:-}" = "1" ]; then
  echo "[moto] skipped (TENANTSCOPE_SKIP_MOTO=1)"
else
  tenantscope_moto
fi
