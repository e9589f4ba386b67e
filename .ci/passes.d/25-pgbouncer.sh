# shellcheck shell=bash
# Sourced by .ci/run after the main pass: the Postgres suites again, with every scoped pool, owner
# and test connection going through Debian's PgBouncer 1.18 in TRANSACTION mode
# (.ci/services.d/30-pgbouncer.sh) in front of PostgreSQL 15.
#   DATABASE_URL         the superuser through PgBouncer (scratch databases are created through it:
#                        the wildcard [databases] entry serves any database name)
#   DATABASE_DIRECT_URL  the same server without PgBouncer, for what needs a session of its own
#                        (LISTEN, dropping databases with backends still attached)
#   DATABASE_POOLER      'transaction': suites declare `pooler: 'transaction'` on their scoped pools
#   TENANTSCOPE_PG_POOLER the same for the example server (scoped pool, audit log) the e2e suites start
# Listed: every suite that talks to PostgreSQL: the whole Postgres package, the audit and secrets
# Postgres backends, and every test in test/ that uses PostgreSQL (the example server's included),
# with the CLI suites whose configs declare the pooler (evidence, doctor, the Postgres audit sink,
# DSAR export/delete/subject, API keys) and the API-key e2e through the example server.
# The move's Postgres fence (move-fence-pg: a transaction held across the pause) and the doctor over
# tenant databases run here too. Not yet listed: test/cli/move.test.ts and move-kill.test.ts (the
# fence test covers the pooler-specific part of a move: bind() and the fence in one transaction),
# and test/docs/quickstart.test.ts (the page's own set-up, not yet tried behind a pooler).
if [ -n "${PGBOUNCER_URL:-}" ] && [ -n "${PG15_URL:-}" ]; then
  run_pass pgbouncer DATABASE_URL="$PGBOUNCER_URL" DATABASE_DIRECT_URL="$PG15_URL" DATABASE_POOLER=transaction \
    TENANTSCOPE_PG_POOLER=transaction PGBOUNCER_URL="$PGBOUNCER_URL" -- \
    packages/postgres packages/audit/src/postgres packages/secrets/src/postgres.test.ts \
    test/postgres test/core/replica-state.test.ts test/audit \
    test/e2e/example-server.test.ts test/e2e/replicas-haproxy.test.ts test/e2e/replicas-lifecycle.test.ts \
    test/cli/example-evidence.test.ts test/cli/doctor.test.ts test/cli/audit.test.ts \
    test/cli/dsar.test.ts test/cli/keys.test.ts test/e2e/api-keys.test.ts \
    test/cli/doctor-tenants.test.ts test/cli/move-fence-pg.test.ts
else
  echo "=== pass: pgbouncer skipped: PGBOUNCER_URL or PG15_URL is not set (TENANTSCOPE_SKIP_PGBOUNCER=1 or TENANTSCOPE_SKIP_PG15=1?)"
fi
