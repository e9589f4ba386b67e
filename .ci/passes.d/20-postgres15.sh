# shellcheck shell=bash
# Sourced by .ci/run after the main pass: the @tenantscope/postgres suite again, against the
# machine's PostgreSQL 15 (PG15_URL from .ci/services.d/20-postgres15.sh), so two major versions
# are covered (the main pass uses the embedded PostgreSQL 18).
if [ -n "${PG15_URL:-}" ]; then
  run_pass postgres15 DATABASE_URL="$PG15_URL" -- packages/postgres test/postgres
else
  echo "=== pass: postgres15 skipped: PG15_URL is not set (TENANTSCOPE_SKIP_PG15=1?)"
fi
