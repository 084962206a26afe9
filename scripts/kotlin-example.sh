#!/usr/bin/env bash
# The Kotlin desktop example against a siwa server (default: `siwa-server dev` at
# http://127.0.0.1:3000): builds siwa-kit.jar and the example, then runs it. It opens the
# browser (or prints the URL to open), signs in through the server, prints the user, gets an
# access token and signs out.
#
#   scripts/kotlin-example.sh [SERVER_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-kotlin.sh >&2
kotlin=kotlin-package/node_modules/kotlin-compiler
exec java -Djna.nosys=false \
    -cp "kotlin-package/build/siwa-example.jar:kotlin-package/build/siwa-kit.jar:/usr/share/java/jna.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar:$kotlin/lib/kotlin-stdlib.jar" \
    dev.siwa.kit.example.MainKt "${1:-http://127.0.0.1:3000}"
