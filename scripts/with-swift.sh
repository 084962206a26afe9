#!/usr/bin/env bash
# Runs a command with a Swift toolchain, in a folder of the checkout:
#   scripts/with-swift.sh swift-package swift test
# With a `swift` on PATH it runs in place. Otherwise it runs inside the root file system that
# scripts/swift-toolchain.sh provisions, with the checkout bound at /src (so paths given to the
# command must be relative to the folder). SIWA_IN_CHECKOUT tells the command where the
# checkout is, as the command sees it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift

root=$(scripts/swift-toolchain.sh)
if [ -z "$root" ]; then
    cd "$dir"
    exec env SIWA_IN_CHECKOUT="$OLDPWD" "$@"
fi

mkdir -p "$root/src"
mountpoint -q "$root/src" && umount -l "$root/src"
mount --bind "$PWD" "$root/src"
trap 'umount -l "$root/src" 2>/dev/null || true' EXIT
chroot "$root" env HOME=/root PATH=/usr/bin:/bin SIWA_IN_CHECKOUT=/src \
    sh -c 'cd "/src/$1" && shift && exec "$@"' sh "$dir" "$@"
