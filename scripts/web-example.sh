#!/usr/bin/env bash
# The example single-page app (js-package/examples/web/) against `siwa-server dev`, in one
# command: builds siwa-kit, starts the server with its fake Apple (port 3000, which lists the
# example's origin in SIWA_WEB_ORIGINS) and serves the app at http://127.0.0.1:5173. Ctrl-C
# stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/node.sh
(cd js-package && [ -x node_modules/.bin/tsc ] ||
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
(cd js-package && node_modules/.bin/tsc -p tsconfig.json)
cargo build --locked -q -p siwa-server
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/siwa-server"
"$bin" dev --database-url "sqlite://siwa-example.db?mode=rwc" --env-file siwa-example.env &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
node js-package/examples/web/serve.mjs --port 5173 --server http://127.0.0.1:3000
