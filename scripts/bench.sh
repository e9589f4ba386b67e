#!/usr/bin/env bash
# Runs every benchmark in test/bench (or the ones named). Each prints our path, its raw baseline and their ratio.
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
if [ "$#" -gt 0 ]; then benches=("$@"); else benches=(test/bench/*/main.ts); fi
for b in "${benches[@]}"; do
  echo "== $b"
  node "$b"
done
