# Sourced by the other scripts. Brings a supported Node (22, from the npm registry's `node`
# package) and the pinned pnpm into .tools/, puts them first on PATH, and installs the
# workspace. Only the machine's own Node and npm are needed before this runs.
# corepack is not used: this registry serves no signatures, so corepack refuses to run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TURBO_TELEMETRY_DISABLED=1
export npm_config_update_notifier=false
if [ ! -x "$ROOT/.tools/node_modules/.bin/pnpm" ] || [ ! -x "$ROOT/.tools/node_modules/.bin/node" ] \
  || [ "$ROOT/.tools/package.json" -nt "$ROOT/.tools/node_modules/.installed" ]; then
  echo "toolchain: installing Node 22 and pnpm into .tools/ (npm)" >&2
  (cd "$ROOT/.tools" && npm install --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.installed)
fi
export PATH="$ROOT/.tools/node_modules/.bin:$ROOT/node_modules/.bin:$PATH"
# Another supported Node (CI's Node 24 pass) may be put first on purpose.
if [ -n "${TENANTSCOPE_NODE_DIR:-}" ]; then export PATH="$TENANTSCOPE_NODE_DIR:$PATH"; fi
if [ ! -f "$ROOT/node_modules/.modules.yaml" ] || [ "$ROOT/pnpm-lock.yaml" -nt "$ROOT/node_modules/.modules.yaml" ]; then
  echo "toolchain: pnpm install" >&2
  (cd "$ROOT" && pnpm install --frozen-lockfile --reporter=append-only >&2)
fi
