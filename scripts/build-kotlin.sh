#!/usr/bin/env bash
# Builds kotlin-package/build/siwa-kit.jar: the Kotlin classes (the generated bindings and
# LoopbackBrowserSignIn) and the Linux x86-64 library (release) at JNA's resource path
# `linux-x86-64/libsiwa_ffi.so`. A desktop app needs that jar, JNA and kotlinx-coroutines
# (with the Kotlin standard library), nothing else. Also compiles the example desktop program
# (kotlin-package/build/siwa-example.jar).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
out=kotlin-package/build
kotlin=kotlin-package/node_modules/kotlin-compiler
[ -x "$kotlin/bin/kotlinc" ] || (cd kotlin-package && npm ci --no-audit --no-fund --silent)
runtime="/usr/share/java/jna.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar:$kotlin/lib/kotlin-stdlib.jar"
[ -f /usr/share/java/jna.jar ] || { echo "JNA is needed (Debian: apt-get install libjna-java libjna-jni)" >&2; exit 1; }

echo "== building libsiwa_ffi (release)"
cargo build --locked --release -q -p siwa-ffi --lib
mkdir -p "$out/classes/linux-x86-64"
cp "$CARGO_TARGET_DIR/release/libsiwa_ffi.so" "$out/classes/linux-x86-64/"

echo "== kotlinc: siwa-kit.jar and the example"
bash "$kotlin/bin/kotlinc" -nowarn -classpath "$runtime" \
    $(find kotlin-package/src/main/kotlin -name '*.kt' | sort) -d "$out/classes" 2>&1 | grep -v '^warning' || true
(cd "$out/classes" && jar cf ../siwa-kit.jar .)
bash "$kotlin/bin/kotlinc" -nowarn -classpath "$out/siwa-kit.jar:$runtime" \
    kotlin-package/examples/desktop/Main.kt -d "$out/siwa-example.jar" 2>&1 | grep -v '^warning' || true
[ -f "$out/siwa-example.jar" ] || { echo "kotlinc failed" >&2; exit 1; }
echo "== $out/siwa-kit.jar ($(du -h "$out/siwa-kit.jar" | cut -f1)), $out/siwa-example.jar"
echo "run: java -Djna.nosys=false -cp $out/siwa-example.jar:$out/siwa-kit.jar:$runtime dev.siwa.kit.example.MainKt [SERVER_URL]"
