# shellcheck shell=bash
# Sourced by .ci/run. docs/quickstart.md sets up its database with `psql`, and CI runs that page
# verbatim (test/docs/quickstart.test.ts), so the PostgreSQL client must be on PATH. 20-postgres15.sh
# brings it with the server; this installs the client alone when that was skipped. Idempotent.
if command -v psql >/dev/null 2>&1; then
  echo "[psql] $(psql --version)"
else
  echo "[psql] installing postgresql-client from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null ||
    { echo "[psql] FAILED: apt-get install postgresql-client" >&2; return 1; }
  echo "[psql] $(psql --version)"
fi
