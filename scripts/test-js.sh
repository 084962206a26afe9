#!/usr/bin/env bash
# The TypeScript client (js-package/, npm `siwa-kit`): built, its generated types checked
# against the server's OpenAPI document, its browser build measured against its budget, then
# token mode in Node and browser mode in headless Chromium, against real siwa-server and
# mock-apple processes. The web app and the server are on two host names of one site
# (app.siwa.test and auth.siwa.test, mapped to 127.0.0.1 by Chromium's host resolver rules);
# the fake Apple is on another site (localhost). Prints `js: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# A temporary folder ($work) and the processes started (killed, and the folder removed, on exit).
. scripts/stack.sh

scripts/node.sh
scripts/chromium.sh
echo "== js-package and web-test: npm ci (Chromium is Debian's, no browser download)"
(cd js-package && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
(cd web-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)

echo "== building siwa-server and mock-apple; the TypeScript types against /openapi.json"
cargo build --locked -q -p siwa-server -p mock-apple --bins
bin="$CARGO_TARGET_DIR/debug"
scripts/generate-bindings.sh --check
(cd js-package && node_modules/.bin/tsc -p tsconfig.json)

passed=0
failed=0
count() { # the suite's closing line, added to the totals
    local line
    line=$(grep -E '^[a-z ]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    [ -n "$line" ] || { failed=$((failed + 1)); return; }
    passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed/\1/')))
}

# The budget is checked as a test: the browser build under 8 KB, minified and gzipped.
if (cd js-package && node scripts/size.mjs); then passed=$((passed + 1)); else failed=$((failed + 1)); fi

status=0
# Access tokens of 30 s: the clients' margin is then a quarter of that.
start_stack "http://127.0.0.1/callback" SIWA_ACCESS_TOKEN_TTL_SECS=30
echo "== token mode in Node: server $server, fake Apple $mock"
SIWA_SERVER="$server" SIWA_MOCK="http://127.0.0.1:$mock_port" SIWA_CONSENT="$PWD/web-test/consent.mjs" \
    node js-package/test/token.test.mjs | tee "$work/token.log" || status=$?
count "$work/token.log"

# A stack of its own for the browser: the server on auth.siwa.test, its web app on
# app.siwa.test (one site), with short access tokens to see them fetched again.
server_port=$(free_port)
app_port=$(free_port)
SIWA_STACK_PORT=$server_port start_stack "http://127.0.0.1/callback" \
    SIWA_DATABASE_URL="sqlite://$work/browser.db?mode=rwc" \
    SIWA_ACCESS_TOKEN_TTL_SECS=8 \
    SIWA_PUBLIC_URL="http://auth.siwa.test:$server_port" \
    SIWA_WEB_ORIGINS="http://app.siwa.test:$app_port"
echo "== browser mode in headless Chromium: app http://app.siwa.test:$app_port, server http://auth.siwa.test:$server_port"
SIWA_AUTH="http://auth.siwa.test:$server_port" SIWA_APP_PORT="$app_port" SIWA_MOCK="$mock" \
    node js-package/test/browser.test.mjs | tee "$work/browser.log" || status=$?
count "$work/browser.log"

[ "$status" = 0 ] || show_logs
echo "js: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$status" = 0 ]
