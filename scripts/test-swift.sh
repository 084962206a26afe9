#!/usr/bin/env bash
# SiwaKit's tests: builds the Rust library and the binaries the end-to-end test runs, checks
# that the committed Swift bindings are current, finds (or provisions) a Swift toolchain,
# parses every Apple-only Swift file, and runs `swift test` for the package.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== building libsiwa_ffi, mock-apple and siwa-server"
cargo build --locked -q -p siwa-ffi -p mock-apple -p siwa-server --features siwa-ffi/bindgen
scripts/generate-bindings.sh --check

# The package links the library from .rust/, and the end-to-end test runs the binaries there.
rust_dir=swift-package/.rust
rm -rf "$rust_dir" && mkdir -p "$rust_dir"
for f in libsiwa_ffi.so libsiwa_ffi.dylib mock-apple siwa-server; do
    [ -e "$CARGO_TARGET_DIR/debug/$f" ] && cp "$CARGO_TARGET_DIR/debug/$f" "$rust_dir/"
done

# Code for Apple's frameworks (AuthenticationServices, Security, SwiftUI) cannot be compiled
# here, but it can be parsed, so that it never rots unseen.
apple_only=$(grep -rl --include='*.swift' -E '^#if canImport\((AuthenticationServices|Security|SwiftUI|UIKit)\)|^import SwiftUI' \
    swift-package/Sources swift-package/Examples | sort)

echo "== swiftc -parse over the Apple-only sources:" $apple_only
scripts/with-swift.sh . swiftc -parse $apple_only

echo "== swift test (SiwaKit)"
# The end-to-end test runs the binaries in .rust/ (SIWA_IN_CHECKOUT: the checkout as Swift sees it).
scripts/with-swift.sh swift-package sh -c \
    'SIWA_TEST_BIN_DIR="$SIWA_IN_CHECKOUT/swift-package/.rust" SIWA_REQUIRE_E2E=1 swift test' \
    2>&1 | tee "$rust_dir/swift-test.log"
