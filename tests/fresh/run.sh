#!/usr/bin/env bash
# The quick start on a machine that has only `libvirt-daemon` (no `libvirt-daemon-system`): no `libvirt-qemu`
# user and no libvirt daemon listening, so corrald falls back to the embedded QEMU driver.
#
#   usage: tests/fresh/run.sh <path-to-corrald>   (root; the guest assets of tests/guest/build-assets.sh)
#
# The machine state is made in a private mount namespace: a copy of /etc without the libvirt-qemu user and
# group is mounted over /etc, and an empty /run/libvirt hides any libvirtd. There it checks that
#   1. corrald without the user serves, and a Start says what is missing and how to get it;
#   2. scripts/deps creates the user, after which the same corrald on its default URI boots a real guest.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 <path-to-corrald>" >&2; exit 2; }
CORRALD=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ASSETS=${CORRAL_GUEST_DIR:-/var/tmp/corral-guest}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 0; }

if [ -z "${CORRAL_FRESH_INSIDE:-}" ]; then
    "$REPO/tests/guest/build-assets.sh" "$ASSETS" >/dev/null
    exec env CORRAL_FRESH_INSIDE=1 unshare --mount --propagation private "$0" "$CORRALD"
fi

fail() { echo "FAIL: $*" >&2; [ -f "$T/corrald.log" ] && sed 's/^/  corrald: /' "$T/corrald.log" >&2; exit 1; }
T=$(mktemp -d /tmp/corral-fresh.XXXXXX)
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

# The machine without the user: a private copy of /etc (renames inside it must work, so the whole
# directory, not single files, is mounted over).
cp -a /etc "$T/etc"
sed -i '/^libvirt-qemu:/d' "$T/etc/passwd" "$T/etc/shadow" "$T/etc/group" "$T/etc/gshadow" 2>/dev/null || true
mount --bind "$T/etc" /etc
mkdir -p /run/libvirt "$T/run-libvirt"
mount --bind "$T/run-libvirt" /run/libvirt
if id libvirt-qemu >/dev/null 2>&1; then fail "the libvirt-qemu user is still visible"; fi

# call METHOD DEST [PAYLOAD]: one Admin API call, the raw reply on stdout with NULs as '|'.
call() {
    python3 - "$T/qubesd.sock" "$1" "$2" "${3:-}" <<'PY'
import socket, sys
sock, method, dest, payload = sys.argv[1:]
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sock)
s.sendall(f"{method} dom0 name {dest}\0".encode() + payload.encode())
s.shutdown(socket.SHUT_WR)
out = b""
while chunk := s.recv(65536):
    out += chunk
print(out.replace(b"\0", b"|").decode(errors="replace"))
PY
}

start_corrald() {
    rm -f "$T/qubesd.sock"
    "$CORRALD" --admin-socket "$T/qubesd.sock" --internal-socket "$T/internal.sock" --state-dir "$T/state" \
        --http off >>"$T/corrald.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do [ -S "$T/qubesd.sock" ] && return 0; sleep 0.05; done
    fail "corrald did not start"
}
stop_corrald() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

echo "== without the libvirt-qemu user"
start_corrald
call admin.vm.Create.TemplateVM dom0 'name=tpl label=black' | grep -q '^0|' || fail "create the template"
call admin.vm.Create.AppVM+tpl dom0 'name=guest label=red' | grep -q '^0|' || fail "create the qube"
mkdir -p "$T/state/vm-kernels"
ln -s "$ASSETS" "$T/state/vm-kernels/tiny"
for kv in kernel=tiny memory=128 vcpus=1; do
    call "admin.vm.property.Set+${kv%%=*}" guest "${kv#*=}" | grep -q '^0|' || fail "set $kv"
done
reply=$(call admin.vm.Start guest)
echo "  Start: $reply"
[[ $reply == 2\|QubesVMError\|* ]] || fail "Start without a hypervisor: $reply"
[[ $reply == *libvirt-qemu* && $reply == *scripts/deps* ]] || fail "the error does not say what to do: $reply"
[ "$(grep -c 'no hypervisor' "$T/corrald.log")" -eq 1 ] || fail "the log should say once that there is no hypervisor"
stop_corrald

echo "== scripts/deps creates what is missing"
"$REPO/scripts/deps"
id libvirt-qemu >/dev/null || fail "scripts/deps did not create the libvirt-qemu user"

echo "== the embedded QEMU driver boots a guest"
start_corrald
grep -q 'connected to libvirt.*qemu:///embed' "$T/corrald.log" || fail "corrald did not use the embedded driver"
reply=$(call admin.vm.Start guest)
[ "$reply" = '0|' ] || fail "Start: $reply"
call admin.vm.CurrentState guest | grep -q 'power_state=Running' || fail "not running"
for _ in $(seq 900); do
    grep -q CORRAL-GUEST-READY "$T/state/logs/guest.console" 2>/dev/null && break
    sleep 0.1
done
grep -q CORRAL-GUEST-READY "$T/state/logs/guest.console" || fail "the guest did not boot"
[ "$(call admin.vm.Kill guest)" = '0|' ] || fail "Kill"
stop_corrald
echo "OK: a fresh machine gets a working hypervisor"
