#!/usr/bin/env bash
# Finds a Swift toolchain, or provisions one, and prints the command prefix that runs it.
#
# - A `swift` on PATH (macOS with Xcode, a Linux box with Swift installed) is used as it is:
#   prints nothing, and callers run `swift` directly.
# - Otherwise, on Debian as root: Debian's current release (trixie) packages Swift 6.0.3 as
#   `swiftlang`; debootstrap lays trixie out in a folder outside the checkout and Swift runs
#   there under chroot (the host's release has no Swift). Idempotent: a folder that already holds
#   a working `swift` is reused. Prints the folder, which callers use as a chroot root.
#
# SIWA_SWIFT_ROOT chooses the folder (default: ~/.cache/siwa/swift-trixie).
set -euo pipefail

if command -v swift >/dev/null 2>&1; then
    exit 0
fi

root="${SIWA_SWIFT_ROOT:-$HOME/.cache/siwa/swift-trixie}"
# What the package needs inside: Swift, a C library and C++ runtime to link against, and the
# libraries the host-built Rust library links dynamically (OpenSSL, through native-tls).
packages="swiftlang libc6-dev libstdc++-14-dev libssl3t64 ca-certificates"

# /usr/bin/swift is an absolute symlink inside the root: only the chroot can follow it.
works() {
    [ -L "$root/usr/bin/swift" ] || [ -e "$root/usr/bin/swift" ] || return 1
    chroot "$root" /usr/bin/swift --version >/dev/null 2>&1
}

mount_proc() {
    # Swift wants /proc; a mount left by an earlier run is reused.
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
}

if [ -x "$root/usr/bin/apt-get" ]; then
    mount_proc
    if works; then
        echo "$root"
        exit 0
    fi
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "no Swift toolchain: install Swift 6 (swift.org) or run as root on Debian to provision one" >&2
    exit 1
fi

echo "== provisioning Swift 6 (Debian trixie's swiftlang) in $root" >&2
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
    # A half-made folder from an interrupted run is started again.
    rm -rf "$root" "$root.partial"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase trixie "$root.partial" >&2
    mv "$root.partial" "$root"
fi
mount_proc
chroot "$root" apt-get update -qq >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
works || { echo "the provisioned Swift toolchain does not run" >&2; exit 1; }
echo "$root"
