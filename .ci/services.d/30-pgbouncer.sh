# shellcheck shell=bash
# Sourced by .ci/run after 20-postgres15.sh. Runs Debian's PgBouncer (1.18, installed with apt-get
# if missing) in TRANSACTION mode in front of that PostgreSQL 15 cluster, with its default reset
# behaviour and a wildcard [databases] entry, and exports
#   PGBOUNCER_URL   the PG15 superuser through PgBouncer (postgres@127.0.0.1:$PGBOUNCER_PORT)
# PG15_URL stays the direct connection. .ci/passes.d/25-pgbouncer.sh runs the Postgres suites with
# DATABASE_URL="$PGBOUNCER_URL" and DATABASE_DIRECT_URL="$PG15_URL".
# Auth: scram-sha-256; PgBouncer logs in as auth_user=postgres (password in its auth_file) and looks
# every other role's secret up with the default auth_query, so the roles tests create just work.
# Runs as the postgres user from a private folder. Idempotent: a running instance with the same
# config is reused. Every wait is bounded; a failure prints the log tail and returns non-zero.
# Skip with TENANTSCOPE_SKIP_PGBOUNCER=1.

tenantscope_pgbouncer() {
  local port="${PGBOUNCER_PORT:-6432}"
  local dir="${PGBOUNCER_DIR:-/tmp/tenantscope-pgbouncer}"
  local password="${PG15_PASSWORD:-tenantscope-ci-pg15}"
  _pgb_fail() {
    echo "[pgbouncer] FAILED: $*" >&2
    tail -n 30 "${dir}/pgbouncer.log" >&2 2>/dev/null || true
    return 1
  }
  if [ -z "${PG15_URL:-}" ]; then
    echo "[pgbouncer] skipped: PG15_URL is not set (the PostgreSQL 15 service did not start)"
    return 0
  fi
  local pg_port
  pg_port="$(echo "$PG15_URL" | sed -E 's#.*@[^:/]+:([0-9]+)/.*#\1#')"
  if ! command -v pgbouncer >/dev/null 2>&1; then
    echo "[pgbouncer] installing pgbouncer from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=180 update -qq || _pgb_fail "apt-get update" || return 1
    apt-get -o DPkg::Lock::Timeout=180 install -y -qq --no-install-recommends pgbouncer >/dev/null ||
      _pgb_fail "apt-get install pgbouncer" || return 1
  fi
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  # auth_user's own password; every other role is looked up through it (auth_query).
  printf '"postgres" "%s"\n' "$password" >"${dir}/userlist.txt"
  cat >"${dir}/pgbouncer.ini.new" <<EOF
[databases]
* = host=127.0.0.1 port=${pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir = ${dir}
pidfile = ${dir}/pgbouncer.pid
logfile = ${dir}/pgbouncer.log
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
auth_user = postgres
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
reserve_pool_size = 0
server_idle_timeout = 10
ignore_startup_parameters = extra_float_digits
admin_users = postgres
EOF
  chown postgres:postgres "${dir}/userlist.txt" "${dir}/pgbouncer.ini.new"
  chmod 600 "${dir}/userlist.txt"
  local pid=""
  [ -f "${dir}/pgbouncer.pid" ] && pid="$(cat "${dir}/pgbouncer.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && cmp -s "${dir}/pgbouncer.ini.new" "${dir}/pgbouncer.ini"; then
    echo "[pgbouncer] reusing the running instance (pid ${pid})"
  else
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      local j
      for ((j = 0; j < 50; j++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    mv "${dir}/pgbouncer.ini.new" "${dir}/pgbouncer.ini"
    : >"${dir}/pgbouncer.log"
    chown postgres:postgres "${dir}/pgbouncer.log"
    runuser -u postgres -- pgbouncer -d "${dir}/pgbouncer.ini" || _pgb_fail "pgbouncer did not start" || return 1
  fi
  rm -f "${dir}/pgbouncer.ini.new"
  local i v
  for ((i = 0; i < 40; i++)); do
    if v="$(PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc 'SHOW server_version' 2>&1)"; then
      break
    fi
    sleep 0.5
  done
  [ "$i" -lt 40 ] || _pgb_fail "no answer through PgBouncer within 20 s: $v" || return 1
  export PGBOUNCER_URL="postgres://postgres:${password}@127.0.0.1:${port}/postgres"
  echo "[pgbouncer] $(pgbouncer --version | head -1), pool_mode=transaction, PostgreSQL ${v} behind it; PGBOUNCER_URL=postgres://postgres:***@127.0.0.1:${port}/postgres"
}

if [ "${TENANTSCOPE_SKIP_PGBOUNCER:-}" = "1" ]; then
  echo "[pgbouncer] skipped (TENANTSCOPE_SKIP_PGBOUNCER=1)"
else
  tenantscope_pgbouncer
fi
