# shellcheck shell=bash
# Sourced by .ci/run. Starts the machine's Debian PostgreSQL 15 (installing it with apt-get if
# missing) for a second pass of the @tenantscope/postgres suite, and exports
#   PG15_URL   a superuser URL over TCP (postgres@127.0.0.1)
# NOT DATABASE_URL: the main pass keeps its embedded PostgreSQL 18. .ci/passes.d/20-postgres15.sh
# runs the suite again with DATABASE_URL="$PG15_URL". Idempotent: a running cluster is reused; the
# superuser password is (re)set each time. Every wait is bounded; a failure prints the server log
# tail and returns non-zero (the caller runs with `set -e`, so CI stops loudly).
# Skip with TENANTSCOPE_SKIP_PG15=1.

tenantscope_pg15() {
  local ver=15 cluster=main
  local password="${PG15_PASSWORD:-tenantscope-ci-pg15}"
  _pg15_fail() {
    echo "[pg15] FAILED: $*" >&2
    tail -n 30 "/var/log/postgresql/postgresql-${ver}-${cluster}.log" >&2 2>/dev/null || true
    return 1
  }
  if [ ! -x "/usr/lib/postgresql/${ver}/bin/postgres" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "[pg15] installing postgresql-${ver} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || _pg15_fail "apt-get update" || return 1
    apt-get install -y -qq --no-install-recommends "postgresql-${ver}" >/dev/null || _pg15_fail "apt-get install postgresql-${ver}" || return 1
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
    echo "[pg15] creating cluster ${ver}/${cluster}"
    pg_createcluster "$ver" "$cluster" >/dev/null || _pg15_fail "pg_createcluster" || return 1
  fi
  local port
  port="$(pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c { print $3 }')"
  [ -n "$port" ] || _pg15_fail "no port for cluster ${ver}/${cluster}" || return 1
  if ! pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c && $4 == "online" { found = 1 } END { exit !found }'; then
    # Room for parallel suites; only takes effect at start.
    pg_conftool "$ver" "$cluster" set max_connections 300 >/dev/null 2>&1 || true
    echo "[pg15] starting cluster ${ver}/${cluster} on port ${port}"
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start || _pg15_fail "pg_ctlcluster start" || return 1
  fi
  local i
  for ((i = 0; i < 30; i++)); do
    if runuser -u postgres -- psql -p "$port" -qAtc 'SELECT 1' >/dev/null 2>&1; then break; fi
    sleep 1
  done
  [ "$i" -lt 30 ] || _pg15_fail "server did not answer within 30 s" || return 1
  # Peer auth on the socket for postgres; TCP uses scram, so give the superuser a password.
  runuser -u postgres -- psql -p "$port" -qAtc "ALTER ROLE postgres PASSWORD '${password}'" >/dev/null ||
    _pg15_fail "setting the superuser password" || return 1
  export PG15_URL="postgres://postgres:${password}@127.0.0.1:${port}/postgres"
  local v
  v="$(PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc 'SHOW server_version' 2>&1)" ||
    _pg15_fail "TCP login as postgres: $v" || return 1
  echo "[pg15] PostgreSQL ${v} ready; PG15_URL=postgres://postgres:***@127.0.0.1:${port}/postgres"
}

if [ "${TENANTSCOPE_SKIP_PG15:-}" = "1" ]; then
  echo "[pg15] skipped (TENANTSCOPE_SKIP_PG15=1)"
else
  tenantscope_pg15
fi
