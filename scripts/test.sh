#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, lints, checks the packages' exports,
# runs every test suite, and ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
# The sample server's tests need Redis (scale-out) and Chromium (the page); the bridge's, Debian mail clients.
M365_SETUP_EXTRAS="redis chromium bridge" bash scripts/setup.sh

echo "[test] lint (biome)"
pnpm biome check . >/dev/null || { pnpm biome check . | tail -40; exit 1; }
echo "[test] typecheck (one program over every package: tsconfig.check.json)"
pnpm typecheck
echo "[test] publint + attw on every published package"
pnpm turbo run check-package --output-logs=errors-only
echo "[test] every TypeScript example in the READMEs compiles against the built packages"
node scripts/check-readme-examples.mjs

echo "[test] vitest"
report=$(mktemp)
status=0
pnpm vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report"
rm -f "$report"
exit $status
