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

root=$(scripts/swift-toolchain.sh)
if [ -z "$root" ]; then
    bin_dir="$PWD/$rust_dir"
    run_swift() { (cd swift-package && "$@"); }
    run_parse() { swiftc -parse "$@"; }
else
    # Swift runs in the provisioned root file system; the checkout is bound into it.
    bin_dir="/src/$rust_dir"
    mkdir -p "$root/src"
    mountpoint -q "$root/src" && umount "$root/src"
    mount --bind "$PWD" "$root/src"
    trap 'umount "$root/src" 2>/dev/null || true' EXIT
    run_swift() { chroot "$root" env HOME=/root PATH=/usr/bin:/bin sh -c 'cd /src/swift-package && "$@"' sh "$@"; }
    run_parse() { chroot "$root" sh -c 'cd /src && swiftc -parse "$@"' sh "$@"; }
fi

echo "== swiftc -parse over the Apple-only sources:" $apple_only
run_parse $apple_only

echo "== swift test (SiwaKit)"
run_swift env SIWA_TEST_BIN_DIR="$bin_dir" SIWA_REQUIRE_E2E=1 swift test 2>&1 | tee "$rust_dir/swift-test.log"
