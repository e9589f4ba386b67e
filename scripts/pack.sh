#!/usr/bin/env bash
# Builds every publishable package (tsc -p tsconfig.build.json into dist/) and packs it with
# `pnpm pack` (which applies publishConfig and turns workspace:* into real versions).
#   scripts/pack.sh [outdir]      outdir defaults to .tmp/pack/
# Prints one tarball path per line on stdout (progress goes to stderr). Fails if a tarball
# contains test code (*.test.*, testing/, test-support, test-helpers) or TypeScript sources.
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
# Builds write packages/*/dist in place: two packs at once would remove each other's dist/.
mkdir -p .tmp
exec 9>".tmp/pack.lock"
flock -w 600 9 || { echo "pack: another scripts/pack.sh held .tmp/pack.lock for 600 s" >&2; exit 1; }
outdir="${1:-.tmp/pack}"
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
const detected = files.filter((f) => f.endsWith('.ts') && testOnly.test(fs.readFileSync(f, 'utf8')));
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
# or (outside testkit itself) @tenantscope/testkit, whatever it is called.
status=0
for tgz in "$outdir"/tenantscope-*.tgz; do
  bad="$(tar -tzf "$tgz" | grep -E '\.test\.|/testing/|-support\.|test-helpers|\.ts$' | grep -vE '\.d\.ts$' || true)"
  unpacked="$(mktemp -d)"
  tar -xzf "$tgz" -C "$unpacked"
  testkit_re="@tenantscope/testkit"
  case "$tgz" in *tenantscope-testkit-*) testkit_re='^$' ;; esac
  importers="$(grep -rlE "from ['\"](vitest|${testkit_re})['\"]" "$unpacked/package/dist" --include='*.js' --include='*.d.ts' 2>/dev/null |
    sed "s#^$unpacked/##" || true)"
  rm -rf "$unpacked"
  if [ -n "$bad$importers" ]; then
    echo "pack: $(basename "$tgz") contains test code or sources:" >&2
    printf '%s\n%s\n' "$bad" "$importers" | sed '/^$/d; s/^/  /' >&2
    status=1
  fi
  echo "$tgz"
done
exit "$status"
