#!/usr/bin/env bash
# Runs a command with the project's toolchain (Node 22, pinned pnpm, installed workspace).
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
exec "$@"
