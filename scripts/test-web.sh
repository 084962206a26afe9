#!/usr/bin/env bash
# The web flow end to end in a real browser: Debian's headless Chromium, driven by
# playwright-core (web-test/web-flow.mjs), against a real siwa-server and mock-apple.
#
# The two are on different sites (the server at http://127.0.0.1, the fake Apple at
# http://localhost), so Apple's form post is really cross-site and Chromium's default cookie
# rules are in play. Installs Chromium and the npm package when it can (root on Debian).
# Screenshots of each step, desktop and phone sizes, go to $SIWA_SCREENSHOTS (printed).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
shots="${SIWA_SCREENSHOTS:-$CARGO_TARGET_DIR/web-screenshots}"
# A temporary folder ($work) and the processes started (killed, and the folder removed, on exit).
. scripts/stack.sh

scripts/chromium.sh
scripts/node.sh
echo "== web-test: npm ci (playwright-core; Chromium is Debian's, no browser download)"
(cd web-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)

echo "== building siwa-server and mock-apple"
cargo build --locked -q -p siwa-server -p mock-apple --bins
bin="$CARGO_TARGET_DIR/debug"

app_redirect="http://127.0.0.1:$(free_port)/app-callback"
start_stack "$app_redirect"

echo "== web flow in headless Chromium: server $server, fake Apple $mock"
status=0
(cd web-test && SIWA_SERVER="$server" SIWA_MOCK="$mock" SIWA_APP_REDIRECT="$app_redirect" \
    SIWA_SCREENSHOTS="$shots" node web-flow.mjs) || status=$?
[ "$status" = 0 ] || show_logs
exit "$status"
