#!/usr/bin/env bash
# The packaging test: what a user installing from the registry gets.
#  1. scripts/pack.sh --cached builds and packs every publishable package (and refuses test code
#     in them), or reuses the tarballs it made for these same sources (.tmp/pack-cache/<key>).
#  2. publint and @arethetypeswrong/cli (pinned in the root package.json) check every tarball.
#  3. The tarballs of core, every adapter and the CLI are installed with plain npm into a fresh folder
#     outside the workspace (mktemp -d), next to the third-party packages the READMEs tell users to add.
#  4. test/packaging/consumer/main.ts is type-checked under moduleResolution NodeNext and Bundler,
#     compiled, and run on Node 22 and on Node 24 (.tools/node24); `npx tenantscope --help` runs
#     the CLI's bin from its tarball on both.
# Ends with "N passed, N failed" (one per check). Run once per CI by .ci/passes.d/40-packaging.sh;
# locally: bash test/packaging/consumer.sh
set -uo pipefail
source "$(dirname "$0")/../../scripts/toolchain.sh"
cd "$ROOT"
set +e
started=$(date +%s)
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $* ($(($(date +%s) - started)) s)"; }
bad() { failed=$((failed + 1)); echo "FAIL $* ($(($(date +%s) - started)) s)"; }
finish() {
  echo "packaging: $(($(date +%s) - started)) s"
  echo "${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit $?
}

work="$(mktemp -d "${TMPDIR:-/tmp}/tenantscope-consumer.XXXXXX")"
case "$work" in "$ROOT"/*) echo "consumer folder must be outside the workspace: $work" >&2; exit 1 ;; esac
trap 'rm -rf "$work"' EXIT
app="$work/app"

# The tarballs of these exact sources: packed once per CI run (the quickstart test of the main pass
# usually packed them already) and reused from .tmp/pack-cache/<key>.
if ! tarballs="$(bash scripts/pack.sh --cached)"; then
  bad "scripts/pack.sh --cached (build, pack, no test code)"
  finish
fi
ok "scripts/pack.sh --cached: $(echo "$tarballs" | wc -l) tarballs in $(dirname "$(echo "$tarballs" | head -1)"), no test code"

# publint and attw, two tarballs at a time (two cores on CI). attw: the packages are ESM only
# ("type": "module", no require condition), so the node16-cjs resolution is not a target.
lint_one() {
  local tgz="$1" work="$2" name
  name="$(basename "$tgz" .tgz)"
  if publint run "$tgz" --strict --level suggestion >"$work/publint-$name.log" 2>&1; then
    echo "PASS publint $name"
  else
    echo "FAIL publint $name"; sed 's/^/  /' "$work/publint-$name.log"
  fi
  if attw "$tgz" --profile esm-only --format ascii >"$work/attw-$name.log" 2>&1; then
    echo "PASS attw $name"
  else
    echo "FAIL attw $name"; sed 's/^/  /' "$work/attw-$name.log"
  fi
}
export -f lint_one
lint="$(printf '%s\n' $tarballs | xargs -P 2 -I{} bash -c 'lint_one "$1" "$2"' _ {} "$work")"
echo "$lint"
passed=$((passed + $(grep -c '^PASS' <<<"$lint")))
failed=$((failed + $(grep -c '^FAIL' <<<"$lint")))
echo "lint done ($(($(date +%s) - started)) s)"

mkdir -p "$app"
cp test/packaging/consumer/main.ts test/packaging/consumer/package.json \
  test/packaging/consumer/tsconfig.nodenext.json test/packaging/consumer/tsconfig.bundler.json "$app/"
# Core, every adapter and the CLI; testkit is for tests and is only linted above.
install=()
for tgz in $tarballs; do case "$tgz" in *testkit*) ;; *) install+=("$tgz") ;; esac; done
if (cd "$app" && npm install --no-audit --no-fund --loglevel=error --prefer-offline "${install[@]}") >"$work/npm.log" 2>&1; then
  ok "npm install of the tarballs into $app"
else
  bad "npm install of the tarballs"; tail -n 30 "$work/npm.log" | sed 's/^/  /'
  finish
fi

copies="$(find "$app/node_modules" -path '*/@tenantscope/core/package.json' | wc -l)"
if [ "$copies" -eq 1 ]; then ok "one copy of @tenantscope/core in the app"; else bad "$copies copies of @tenantscope/core"; fi
# The AWS SDK clients are aligned on one release, so the app holds one copy of each @smithy/* package.
smithy_dups="$(cd "$app" && find node_modules -path '*/@smithy/*/package.json' -not -path '*/dist-*' |
  sed -E 's#.*/(@smithy/[^/]+)/package.json#\1#' | sort | uniq -d)"
if [ -z "$smithy_dups" ]; then ok "no duplicated @smithy/* package"; else bad "duplicated @smithy/* packages: $smithy_dups"; fi

# NodeNext checks every .d.ts (skipLibCheck false: our declarations must compile as shipped) and
# emits out/main.js; Bundler checks resolution and the app's types (skipLibCheck true). In parallel.
for mode in nodenext bundler; do
  (cd "$app" && "$ROOT/node_modules/.bin/tsc" -p "tsconfig.${mode}.json") >"$work/tsc-${mode}.log" 2>&1 &
  eval "tsc_${mode}=\$!"
done
for mode in nodenext bundler; do
  eval "pid=\$tsc_${mode}"
  if wait "$pid"; then
    ok "tsc, moduleResolution ${mode}"
  else
    bad "tsc, moduleResolution ${mode}"; sed 's/^/  /' "$work/tsc-${mode}.log" | head -40
  fi
done

# A lean app: only core, secrets and audit. Their optional backends must not be installed, and
# the root entries must load without them.
lean="$work/lean"
mkdir -p "$lean" && echo '{ "name": "lean", "private": true, "type": "module" }' >"$lean/package.json"
lean_tgz=()
for tgz in $tarballs; do case "$tgz" in *-core-*|*-secrets-*|*-audit-*) lean_tgz+=("$tgz") ;; esac; done
if (cd "$lean" && npm install --no-audit --no-fund --loglevel=error --prefer-offline "${lean_tgz[@]}") >"$work/npm-lean.log" 2>&1; then
  extra="$(cd "$lean/node_modules" && ls -d pg @aws-sdk/client-secrets-manager @opentelemetry/api @tenantscope/postgres 2>/dev/null)"
  if [ -z "$extra" ]; then ok "core + secrets + audit install no optional backend"; else bad "optional backends installed: $extra"; fi
  if (cd "$lean" && node --input-type=module -e "
      const s = await import('@tenantscope/secrets'); const a = await import('@tenantscope/audit');
      if (typeof s.secretsInjector !== 'function' || typeof a.ChainedJsonlAuditSink !== 'function') process.exit(1);
      let refused = 0;
      for (const sub of ['@tenantscope/secrets/aws', '@tenantscope/audit/postgres', '@tenantscope/audit/otel']) {
        await import(sub).catch((e) => { if (e.code === 'ERR_MODULE_NOT_FOUND') refused++; });
      }
      if (refused !== 3) process.exit(2);
    ") >"$work/lean.log" 2>&1; then
    ok "root entries load without their optional peers; the subpaths need them"
  else
    bad "lean root entries"; sed 's/^/  /' "$work/lean.log" | tail -20
  fi
else
  bad "npm install of core + secrets + audit"; tail -n 30 "$work/npm-lean.log" | sed 's/^/  /'
fi

node22="$ROOT/.tools/node_modules/.bin/node"
node24_dir="$ROOT/.tools/node24"
if [ ! -x "$node24_dir/node_modules/.bin/node" ]; then
  (cd "$node24_dir" && npm install --no-audit --no-fund --loglevel=error) >&2
fi
node24="$node24_dir/node_modules/.bin/node"
for node in "$node22" "$node24"; do
  v="$("$node" --version)"
  if [ ! -f "$app/out/main.js" ]; then bad "run on node $v: main.js was not compiled"; continue; fi
  if (cd "$app" && timeout 60 "$node" out/main.js) >"$work/run.log" 2>&1; then
    ok "consumer app runs on node $v"
  else
    bad "consumer app on node $v"; sed 's/^/  /' "$work/run.log" | tail -40
  fi
  # The CLI's bin from its tarball (dist/bin.js and its shebang), the way a user runs it: npx in
  # the app folder, with this Node first on PATH (`#!/usr/bin/env node` picks it).
  if (cd "$app" && PATH="$(dirname "$node"):$PATH" && [ "$(node --version)" = "$v" ] &&
      timeout 60 npx --no-install tenantscope --help) >"$work/bin.log" 2>&1 &&
    grep -q '^Usage: tenantscope' "$work/bin.log" && grep -qE '^ +tenant ' "$work/bin.log" &&
    grep -qE '^ +verify-export ' "$work/bin.log"; then
    ok "npx tenantscope --help from the tarball on node $v"
  else
    bad "npx tenantscope --help on node $v"; sed 's/^/  /' "$work/bin.log" | tail -40
  fi
done
finish
