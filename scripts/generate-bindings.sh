#!/usr/bin/env bash
# Generates SiwaKit's Swift bindings from the siwa-ffi library, in library mode, with the
# workspace's own uniffi-bindgen (so the generator's version is the library's).
#
#   scripts/generate-bindings.sh           writes them into swift-package/
#   scripts/generate-bindings.sh --check   fails if the committed ones differ from a fresh run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

pkg=swift-package
swift_out="$pkg/Sources/SiwaKit/Generated"
header_out="$pkg/Sources/siwa_ffiFFI/include"

cargo build --locked -q -p siwa-ffi --features bindgen --lib --bin uniffi-bindgen
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
# swift-format is optional and rarely installed: its absence only costs formatting.
library="$CARGO_TARGET_DIR/debug/libsiwa_ffi.so"
[ -f "$library" ] || library="$CARGO_TARGET_DIR/debug/libsiwa_ffi.dylib"   # macOS
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$library" \
    --language swift --out-dir "$fresh" --no-format >/dev/null

if [ "${1:-}" = "--check" ]; then
    if ! diff -u "$swift_out/siwa_ffi.swift" "$fresh/siwa_ffi.swift" >/dev/null ||
       ! diff -u "$header_out/siwa_ffiFFI.h" "$fresh/siwa_ffiFFI.h" >/dev/null; then
        echo "the committed Swift bindings are stale: run scripts/generate-bindings.sh and commit" >&2
        diff -u "$swift_out/siwa_ffi.swift" "$fresh/siwa_ffi.swift" | head -40 >&2 || true
        exit 1
    fi
    echo "== Swift bindings are current"
    exit 0
fi
mkdir -p "$swift_out" "$header_out"
cp "$fresh/siwa_ffi.swift" "$swift_out/"
cp "$fresh/siwa_ffiFFI.h" "$header_out/"
echo "== generated $swift_out/siwa_ffi.swift and $header_out/siwa_ffiFFI.h"
