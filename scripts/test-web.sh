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
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing Chromium (Debian packages)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is not installed at /usr/bin/chromium (Debian: apt-get install chromium)" >&2
        exit 1
    fi
fi
if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "Node.js and npm are needed (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
fi
echo "== web-test: npm ci (playwright-core; Chromium is Debian's, no browser download)"
(cd web-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)

echo "== building siwa-server and mock-apple"
cargo build --locked -q -p siwa-server -p mock-apple --bins
bin="$CARGO_TARGET_DIR/debug"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
    for _ in $(seq 1 100); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}
json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

mock_port=$(free_port)
server_port=$(free_port)
app_port=$(free_port)
mock="http://localhost:$mock_port"
server="http://127.0.0.1:$server_port"
app_redirect="http://127.0.0.1:$app_port/app-callback"

"$bin/mock-apple" --port "$mock_port" --base-url "$mock" >"$work/mock.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mock_port/auth/keys"
key=$(curl -fs -X POST "http://127.0.0.1:$mock_port/mock/developer-keys/generate")

env -i PATH="$PATH" HOME="$HOME" RUST_LOG=warn \
    SIWA_HOST=127.0.0.1 PORT="$server_port" \
    SIWA_DATABASE_URL="sqlite://$work/siwa.db?mode=rwc" \
    SIWA_APPLE_CLIENT_IDS=com.example.app \
    SIWA_APPLE_BASE_URL="$mock" \
    SIWA_APPLE_TEAM_ID="$(echo "$key" | json_field teamId)" \
    SIWA_APPLE_KEY_ID="$(echo "$key" | json_field keyId)" \
    SIWA_APPLE_PRIVATE_KEY="$(echo "$key" | json_field privateKeyPem)" \
    SIWA_APPLE_SERVICES_ID=com.example.web \
    SIWA_PUBLIC_URL="$server" \
    SIWA_APP_REDIRECT_URIS="$app_redirect" \
    SIWA_REVOCATION_POLL_SECS=1 \
    "$bin/siwa-server" >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "$server/healthz"

echo "== web flow in headless Chromium: server $server, fake Apple $mock"
status=0
(cd web-test && SIWA_SERVER="$server" SIWA_MOCK="$mock" SIWA_APP_REDIRECT="$app_redirect" \
    SIWA_SCREENSHOTS="$shots" node web-flow.mjs) || status=$?
if [ "$status" != 0 ]; then
    echo "--- siwa-server's log"; tail -n 40 "$work/server.log"
    echo "--- mock-apple's log"; tail -n 20 "$work/mock.log"
fi
exit "$status"
