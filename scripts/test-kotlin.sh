#!/usr/bin/env bash
# The Kotlin client's tests (kotlin-package/): the generated bindings checked for staleness,
# the library and its tests compiled with the npm distribution of kotlinc (no Gradle, no Maven
# Central here: ../shared/kotlin-on-linux.md), and run on the JVM through JNA against real
# mock-apple and siwa-server processes, with headless Chromium as the user's browser.
# Installs what it needs when it can (root on Debian): a JDK, JNA, Node.js, Chromium.
# Prints `kotlin: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# A temporary folder ($work) and the processes started (killed, and the folder removed, on exit).
. scripts/stack.sh

install() { # command-or-file package...
    [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 && return
    shift
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing $* (Debian packages)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "needed: $* (Debian packages)" >&2
        exit 1
    fi
}
install java default-jdk-headless
install /usr/share/java/jna.jar libjna-java libjna-jni
install npm nodejs npm
install /usr/bin/chromium chromium

echo "== kotlin-package: npm ci (kotlin-compiler), web-test: npm ci (playwright-core)"
(cd kotlin-package && npm ci --no-audit --no-fund --silent)
(cd web-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
kotlin=kotlin-package/node_modules/kotlin-compiler
runtime="/usr/share/java/jna.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar:$kotlin/lib/kotlin-stdlib.jar"

echo "== building libsiwa_ffi, mock-apple and siwa-server"
cargo build --locked -q -p siwa-ffi -p mock-apple -p siwa-server --features siwa-ffi/bindgen
scripts/generate-bindings.sh --check
library="$CARGO_TARGET_DIR/debug/libsiwa_ffi.so"
bin="$CARGO_TARGET_DIR/debug"

echo "== kotlinc: the library, its tests and the desktop example"
bash "$kotlin/bin/kotlinc" -nowarn -classpath "$runtime" \
    $(find kotlin-package/src/main/kotlin kotlin-package/src/test/kotlin kotlin-package/examples -name '*.kt' | sort) \
    -d "$work/tests.jar" 2>&1 | grep -v '^warning' || true
[ -f "$work/tests.jar" ] || { echo "kotlinc failed" >&2; exit 1; }

# Access tokens of 30 s: inside the client's refresh margin, so every call wants a refresh.
start_stack "http://127.0.0.1/callback" SIWA_ACCESS_TOKEN_TTL_SECS=30
mkdir -p "$work/data"

echo "== Kotlin tests on the JVM: server $server, fake Apple $mock"
status=0
SIWA_SERVER="$server" SIWA_MOCK="http://127.0.0.1:$mock_port" SIWA_CONSENT="$PWD/web-test/consent.mjs" \
SIWA_DATA="$work/data" \
    java -Djna.nosys=false -Duniffi.component.siwa_ffi.libraryOverride="$library" \
    -cp "$work/tests.jar:$runtime" dev.siwa.kit.SiwaKitTestsKt || status=$?
[ "$status" = 0 ] || show_logs
exit "$status"
