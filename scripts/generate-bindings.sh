#!/usr/bin/env bash
# Generates SiwaKit's Swift bindings and the Kotlin package's bindings from the siwa-ffi
# library, in library mode, with the workspace's own uniffi-bindgen (so the generator's version
# is the library's). The Kotlin package name comes from bindings/uniffi.toml. The TypeScript
# client's types come from the server's OpenAPI document (`siwa-server openapi`, derived from
# siwa_core::api) through js-package's pinned openapi-typescript.
#
#   scripts/generate-bindings.sh           writes them into swift-package/ and kotlin-package/
#   scripts/generate-bindings.sh --check   fails if the committed ones differ from a fresh run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

pkg=swift-package
swift_out="$pkg/Sources/SiwaKit/Generated"
header_out="$pkg/Sources/siwa_ffiFFI/include"
kotlin_out="kotlin-package/src/main/kotlin/dev/siwa/kit"

cargo build --locked -q -p siwa-ffi --features bindgen --lib --bin uniffi-bindgen
cargo build --locked -q -p siwa-server --bin siwa-server
scripts/node.sh
(cd js-package && [ -x node_modules/.bin/openapi-typescript ] ||
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
ts_out=js-package/src/generated/api.ts
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
# swift-format is optional and rarely installed: its absence only costs formatting.
library="$CARGO_TARGET_DIR/debug/libsiwa_ffi.so"
[ -f "$library" ] || library="$CARGO_TARGET_DIR/debug/libsiwa_ffi.dylib"   # macOS
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$library" \
    --language swift --out-dir "$fresh" --no-format >/dev/null
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$library" \
    --language kotlin --out-dir "$fresh/kotlin" --no-format >/dev/null
fresh_kotlin="$fresh/kotlin/dev/siwa/kit/siwa_ffi.kt"
"$CARGO_TARGET_DIR/debug/siwa-server" openapi >"$fresh/openapi.json"
js-package/node_modules/.bin/openapi-typescript "$fresh/openapi.json" --enum-values \
    -o "$fresh/api.ts" >/dev/null 2>&1

if [ "${1:-}" = "--check" ]; then
    if ! diff -u "$swift_out/siwa_ffi.swift" "$fresh/siwa_ffi.swift" >/dev/null ||
       ! diff -u "$header_out/siwa_ffiFFI.h" "$fresh/siwa_ffiFFI.h" >/dev/null ||
       ! diff -u "$kotlin_out/siwa_ffi.kt" "$fresh_kotlin" >/dev/null ||
       ! diff -u "$ts_out" "$fresh/api.ts" >/dev/null; then
        echo "the committed bindings are stale: run scripts/generate-bindings.sh and commit" >&2
        diff -u "$swift_out/siwa_ffi.swift" "$fresh/siwa_ffi.swift" | head -40 >&2 || true
        diff -u "$kotlin_out/siwa_ffi.kt" "$fresh_kotlin" | head -40 >&2 || true
        diff -u "$ts_out" "$fresh/api.ts" | head -40 >&2 || true
        exit 1
    fi
    echo "== Swift, Kotlin and TypeScript bindings are current"
    exit 0
fi
mkdir -p "$swift_out" "$header_out" "$kotlin_out"
cp "$fresh/siwa_ffi.swift" "$swift_out/"
cp "$fresh/siwa_ffiFFI.h" "$header_out/"
cp "$fresh_kotlin" "$kotlin_out/"
cp "$fresh/api.ts" "$ts_out"
echo "== generated $swift_out/siwa_ffi.swift, $header_out/siwa_ffiFFI.h, $kotlin_out/siwa_ffi.kt and $ts_out"
