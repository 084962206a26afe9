#!/usr/bin/env bash
# Builds libsiwa_ffi for Android devices and emulators (arm64-v8a, armeabi-v7a, x86_64) with
# cargo-ndk, into kotlin-package/build/jniLibs/<abi>/, the layout an Android module's
# `src/main/jniLibs` takes, with the size-optimised `release-ffi` profile.
#
# NOT RUN BY CI HERE: it needs Android's NDK (ANDROID_NDK_HOME) and the Rust targets
# (`rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android`),
# which these Linux machines cannot download; scripts/build-xcframework.sh says the same of Xcode.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ANDROID_NDK_HOME:-}" ] || [ ! -d "$ANDROID_NDK_HOME" ]; then
    echo "scripts/build-android.sh needs Android's NDK: set ANDROID_NDK_HOME" >&2
    exit 1
fi
command -v cargo-ndk >/dev/null || cargo install --locked cargo-ndk
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
out=kotlin-package/build/jniLibs
# siwa-ffi builds siwa-core with `native-tls`, which on Android means OpenSSL: the NDK build
# needs it for each ABI (for example the `openssl` crate's `vendored` feature). Untried here.
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o "$out" \
    build --locked -p siwa-ffi --lib --profile release-ffi
echo "== $out: $(find "$out" -name '*.so' | sort | tr '\n' ' ')"
