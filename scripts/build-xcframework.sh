#!/usr/bin/env bash
# Builds swift-package/SiwaFFI.xcframework: libsiwa_ffi for iOS devices, the iOS simulator
# (arm64 and x86_64) and macOS (arm64 and x86_64), with the size-optimised `release-ffi`
# profile (no debug info), and UniFFI's C header and module map. SiwaKit's Package.swift uses
# it on Apple platforms. Needs macOS with Xcode and rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null 2>&1; then
    echo "scripts/build-xcframework.sh needs macOS with Xcode (xcodebuild, lipo); on Linux," >&2
    echo "SiwaKit links the cargo-built library instead (see scripts/test-swift.sh)." >&2
    exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=release-ffi
device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0

rustup target add "$device" "${simulators[@]}" "${macs[@]}"
for target in "$device" "${simulators[@]}" "${macs[@]}"; do
    echo "== $target"
    cargo build --locked -p siwa-ffi --lib --profile "$profile" --target "$target"
done

lib() { echo "$CARGO_TARGET_DIR/$1/$profile/libsiwa_ffi.a"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/simulator" "$work/macos" "$work/headers"
lipo -create "$(lib "${simulators[0]}")" "$(lib "${simulators[1]}")" -output "$work/simulator/libsiwa_ffi.a"
lipo -create "$(lib "${macs[0]}")" "$(lib "${macs[1]}")" -output "$work/macos/libsiwa_ffi.a"

# The same header the committed bindings were generated with, and UniFFI's module map.
cp swift-package/Sources/siwa_ffiFFI/include/siwa_ffiFFI.h "$work/headers/"
cat > "$work/headers/module.modulemap" <<'MAP'
module siwa_ffiFFI {
    header "siwa_ffiFFI.h"
    export *
}
MAP

output=swift-package/SiwaFFI.xcframework
rm -rf "$output"
xcodebuild -create-xcframework \
    -library "$(lib "$device")" -headers "$work/headers" \
    -library "$work/simulator/libsiwa_ffi.a" -headers "$work/headers" \
    -library "$work/macos/libsiwa_ffi.a" -headers "$work/headers" \
    -output "$output"
du -sh "$output"/*/libsiwa_ffi.a
echo "== $output is ready: open swift-package/ in Xcode, or add it to an app as a local package"
