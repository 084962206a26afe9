#!/usr/bin/env bash
# Debian's Chromium at /usr/bin/chromium, for the browser tests: installed when missing and we
# are root; otherwise says what is needed.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Chromium (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "Chromium is not installed at /usr/bin/chromium (Debian: apt-get install chromium)" >&2
    exit 1
fi
