#!/usr/bin/env bash
# Node.js and npm, for the TypeScript client (js-package/) and the browser tests: installed from
# Debian's packages when missing and we are root; otherwise says what is needed.
set -euo pipefail
command -v node >/dev/null && command -v npm >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Node.js and npm (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
else
    echo "Node.js and npm are needed (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
