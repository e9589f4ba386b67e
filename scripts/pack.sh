#!/usr/bin/env bash
# Builds every publishable package (tsc -p tsconfig.build.json into dist/) and packs it with
# `pnpm pack` (which applies publishConfig and turns workspace:* into real versions).
#   scripts/pack.sh [outdir]      outdir defaults to .tmp/pack/
#   scripts/pack.sh --cached      packs once per content of the package sources, into
#                                 .tmp/pack-cache/<key>/, and reuses that folder while the sources
#                                 are unchanged (the quickstart test and CI's packaging pass share it)
# Prints one tarball path per line on stdout (progress goes to stderr). Fails if a tarball
# contains test code (*.test.*, testing/, test-support, test-helpers) or TypeScript sources.
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
# Builds write packages/*/dist in place: two packs at once would remove each other's dist/.
mkdir -p .tmp
exec 9>".tmp/pack.lock"
flock -w 600 9 || { echo "pack: another scripts/pack.sh held .tmp/pack.lock for 600 s" >&2; exit 1; }

# The cache key: git's blob id of every file the build reads (packages/ minus what .gitignore
# drops, i.e. dist/ and node_modules/; this script; tsconfig.base.json), committed or not, with its
# path. A clean checkout of one commit always gets the same key; any edit gets a new one.
sources_key() {
  local files
  files="$(git ls-files -z --cached --others --exclude-standard -- packages scripts/pack.sh tsconfig.base.json |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\n' "$f"; done | LC_ALL=C sort)" || return 1
  [ -n "$files" ] || return 1
  paste -d ' ' <(git hash-object --stdin-paths <<<"$files") <(printf '%s\n' "$files") | sha256sum | cut -c1-16
}
cached=0
if [ "${1:-}" = "--cached" ]; then
  cached=1
  key="$(sources_key)" || { echo "pack: --cached needs a git checkout (could not hash the package sources)" >&2; exit 1; }
  outdir=".tmp/pack-cache/$key"
  if [ -e "$outdir/.complete" ]; then
    echo "pack: reusing $outdir (same package sources)" >&2
    touch "$outdir/.complete" "$outdir"
    ls "$ROOT/$outdir"/tenantscope-*.tgz
    exit 0
  fi
  rm -rf "$outdir"
else
  outdir="${1:-.tmp/pack}"
fi
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
rm -f "$outdir"/tenantscope-*.tgz

packages=()
for dir in packages/*/; do
  dir="${dir%/}"
  # Publishable: has a build config and is not private.
  [ -f "$dir/package.json" ] && [ -f "$dir/tsconfig.build.json" ] || continue
  if node -e 'process.exit(require(process.argv[1]).private ? 0 : 1)' "$ROOT/$dir/package.json"; then continue; fi
  packages+=("$dir")
done

# Test-only modules are never built: the package's tsconfig.build.json excludes them by name, and
# any other source file that imports vitest (or, outside testkit, @tenantscope/testkit) is excluded
# too, through a generated config in .tmp/. A shipped module that imports one of them still pulls
# it in, and the guard at the end refuses the tarball.
build() {
  local dir="$1" cfg
  rm -rf "$dir/dist"
  cfg="$(mktemp "$ROOT/.tmp/tsconfig.pack.XXXXXX.json")" || return 1
  node - "$ROOT/$dir" "$cfg" <<'NODE' || { echo "pack: could not write the build config of $dir" >&2; return 1; }
const fs = require('node:fs');
const path = require('node:path');
const [dir, out] = process.argv.slice(2);
const base = JSON.parse(fs.readFileSync(path.join(dir, 'tsconfig.build.json'), 'utf8'));
const testkit = path.basename(dir) === 'testkit' ? '' : '|@tenantscope/testkit';
const testOnly = new RegExp(`from ['"](vitest${testkit})['"]`);
const files = fs.readdirSync(path.join(dir, 'src'), { recursive: true }).map((f) => path.join(dir, 'src', f));
// testkit's published suite (`@tenantscope/testkit/adapter`, vitest is its peer) is the one module
// that imports vitest on purpose.
const published = path.basename(dir) === 'testkit' ? [path.join(dir, 'src', 'adapter', 'index.ts')] : [];
const detected = files.filter(
  (f) => f.endsWith('.ts') && !published.includes(f) && testOnly.test(fs.readFileSync(f, 'utf8')),
);
const abs = (p) => path.resolve(dir, p);
fs.writeFileSync(out, JSON.stringify({
  extends: path.join(dir, 'tsconfig.build.json'),
  compilerOptions: { outDir: path.join(dir, 'dist'), rootDir: path.join(dir, 'src') },
  include: (base.include ?? ['src/**/*.ts']).map(abs),
  exclude: [...(base.exclude ?? []).map(abs), ...detected],
}));
NODE
  # --noCheck: emit only (same output, half the time). The sources are type-checked by the test
  # command's `tsc -p tsconfig.json`, and the emitted .d.ts files by the consumer test.
  tsc -p "$cfg" --noCheck || { echo "pack: build of $dir failed" >&2; rm -f "$cfg"; return 1; }
  rm -f "$cfg"
}
# Two builds at a time (CI machines have two cores); each is independent (workspace imports
# resolve to the other packages' sources).
pids=()
failed=0
for dir in "${packages[@]}"; do
  echo "pack: building $dir" >&2
  build "$dir" &
  pids+=("$!")
  if [ "${#pids[@]}" -ge 2 ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" -eq 0 ] || exit 1

for dir in "${packages[@]}"; do
  (cd "$dir" && pnpm pack --pack-destination "$outdir" >/dev/null) || { echo "pack: pnpm pack of $dir failed" >&2; exit 1; }
done

# Guards: no test files by name, no TypeScript sources, and no shipped module that imports vitest
# or (outside testkit itself) @tenantscope/testkit, whatever it is called. The one exception is
# testkit's published adapter suite (dist/adapter/index), whose peer is vitest.
status=0
for tgz in "$outdir"/tenantscope-*.tgz; do
  bad="$(tar -tzf "$tgz" | grep -E '\.test\.|/testing/|-support\.|test-helpers|\.ts$' | grep -vE '\.d\.ts$' || true)"
  unpacked="$(mktemp -d)"
  tar -xzf "$tgz" -C "$unpacked"
  testkit_re="@tenantscope/testkit"
  published='^$'
  case "$tgz" in *tenantscope-testkit-*) testkit_re='^$'; published='^package/dist/adapter/index\.(js|d\.ts)$' ;; esac
  importers="$(grep -rlE "from ['\"](vitest|${testkit_re})['\"]" "$unpacked/package/dist" --include='*.js' --include='*.d.ts' 2>/dev/null |
    sed "s#^$unpacked/##" | grep -vE "$published" || true)"
  rm -rf "$unpacked"
  if [ -n "$bad$importers" ]; then
    echo "pack: $(basename "$tgz") contains test code or sources:" >&2
    printf '%s\n%s\n' "$bad" "$importers" | sed '/^$/d; s/^/  /' >&2
    status=1
  fi
  echo "$tgz"
done
if [ "$cached" -eq 1 ] && [ "$status" -eq 0 ]; then
  # A tarball without dist/index.js means something removed dist/ mid-pack: never marked complete.
  for tgz in "$outdir"/tenantscope-*.tgz; do
    # grep without -q reads to the end: under pipefail, -q would SIGPIPE tar and fail the check.
    tar -tzf "$tgz" | grep -x package/dist/index.js >/dev/null || { echo "pack: $tgz has no dist/index.js" >&2; exit 1; }
  done
  touch "$outdir/.complete"
  # Bounded: the three most recently used keys stay.
  ls -1td "$ROOT"/.tmp/pack-cache/*/ 2>/dev/null | tail -n +4 | while read -r old; do rm -rf "$old"; done
fi
exit "$status"
