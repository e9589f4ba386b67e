# shellcheck shell=bash
# Sourced by .ci/run. The project supports Node 22 and 24: the main pass runs on Node 22 (the
# toolchain's), this pass runs the whole suite again on Node 24 from the npm registry's `node` package.
echo "=== node24: installing Node 24 into .tools/node24 (npm)"
(cd .tools/node24 && npm install --no-audit --no-fund --loglevel=error)
run_pass node24 TENANTSCOPE_NODE_DIR="$PWD/.tools/node24/node_modules/.bin"
