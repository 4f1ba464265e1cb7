#!/usr/bin/env bash
# The README's main command: installs what is missing (pnpm, Dovecot), builds, then runs `m365-mail demo`
# against the local emulator (see scripts/demo.ts). Extra arguments go to the demo, e.g. --json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec pnpm exec tsx scripts/demo.ts "$@"
