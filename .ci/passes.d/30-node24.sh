# shellcheck shell=bash
# Sourced by .ci/run. The project supports Node 22 and 24: the main pass runs on Node 22 (the
# toolchain's), this pass runs the suite again on Node 24 from the npm registry's `node` package:
# core, every adapter, the example server, the e2e and docs suites.
# Not here: test/cli/** (the CLI's behaviour against the stores, through its bin, 3 min of the
# pass). It runs in the main pass and its Postgres parts in the pgbouncer pass; the CLI on Node 24
# is covered by the packaging pass, which runs `npx tenantscope --help` from the tarball on Node 24,
# and by packages/cli/src unit tests, which stay in this pass.
echo "=== node24: installing Node 24 into .tools/node24 (npm)"
(cd .tools/node24 && timeout 300 npm install --no-audit --no-fund --loglevel=error)
echo "=== node24: not run in this pass: test/cli/** (run by the main pass on Node 22 and, for Postgres, the pgbouncer pass)"
run_pass node24 TENANTSCOPE_NODE_DIR="$PWD/.tools/node24/node_modules/.bin" -- --exclude 'test/cli/**'
