# shellcheck shell=bash
# Sourced by .ci/run after the main pass: the Postgres suites again, with every scoped pool, owner
# and test connection going through Debian's PgBouncer 1.18 in TRANSACTION mode
# (.ci/services.d/30-pgbouncer.sh) in front of PostgreSQL 15.
#   DATABASE_URL         the superuser through PgBouncer (scratch databases are created through it:
#                        the wildcard [databases] entry serves any database name)
#   DATABASE_DIRECT_URL  the same server without PgBouncer, for what needs a session of its own
#                        (LISTEN, dropping databases with backends still attached)
#   DATABASE_POOLER      'transaction': suites declare `pooler: 'transaction'` on their scoped pools
# Listed: every suite that talks to PostgreSQL and declares its pooler. Not yet listed (they fail
# closed behind PgBouncer, as they should until fixed): test/postgres/crm-tools.test.ts and test/audit/*,
# because the audit sink's pool sets role and synchronous_commit as startup `options`, which
# PgBouncer refuses (and a transaction pooler could not keep); test/audit/rls.test.ts and
# packages/secrets/src/postgres.test.ts, whose scoped pools do not declare `pooler` yet.
if [ -n "${PGBOUNCER_URL:-}" ] && [ -n "${PG15_URL:-}" ]; then
  run_pass pgbouncer DATABASE_URL="$PGBOUNCER_URL" DATABASE_DIRECT_URL="$PG15_URL" DATABASE_POOLER=transaction \
    PGBOUNCER_URL="$PGBOUNCER_URL" -- \
    packages/postgres test/postgres/replica-propagation.test.ts test/core/replica-state.test.ts packages/audit/src/postgres
else
  echo "=== pass: pgbouncer skipped: PGBOUNCER_URL or PG15_URL is not set (TENANTSCOPE_SKIP_PGBOUNCER=1 or TENANTSCOPE_SKIP_PG15=1?)"
fi
