#!/usr/bin/env bash
# The README's main command: installs what is missing, then runs the demo against the local emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec pnpm exec tsx scripts/demo.ts "$@"
