#!/usr/bin/env bash
# The README's first command: installs what it needs, then runs the scripted two-tenant demo.
source "$(dirname "$0")/toolchain.sh"
cd "$ROOT"
exec node examples/crm-server/src/demo.ts
