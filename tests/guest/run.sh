#!/usr/bin/env bash
# Real-guest tier: builds the tiny guest, starts a private libvirtd, and runs the tests that boot the guest as
# a qube through corrald (the Rust scenario test, then the real qubesadmin client). Stops libvirtd on exit.
# Usage: tests/guest/run.sh   (from anywhere; needs root, the packages in README.md, and built binaries)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ASSETS=${CORRAL_GUEST_DIR:-/var/tmp/corral-guest}
STATE=$(mktemp -d /tmp/corral-libvirtd.XXXXXX)

cleanup() {
    "$HERE/libvirtd.sh" stop "$STATE" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
trap cleanup EXIT

"$HERE/build-assets.sh" "$ASSETS"
"$HERE/libvirtd.sh" start "$STATE"

export CORRAL_REAL_GUEST_URI=qemu:///system CORRAL_GUEST_DIR="$ASSETS"
cd "$REPO"
echo "== real guest through corrald"
cargo test --locked -p corrald --test real_guest -- --nocapture
echo "== real guest through the qubesadmin client"
CORRAL_LIBVIRT_URI=qemu:///system tests/qubesadmin/run.sh target/debug/corrald -k real_guest
