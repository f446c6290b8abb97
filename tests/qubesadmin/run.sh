#!/usr/bin/env bash
# Black-box test: run the real upstream qubesadmin client and its qvm-* tools
# against a corrald binary.
#
# Usage: tests/qubesadmin/run.sh <path-to-corrald> [extra pytest args...]
#
# Environment:
#   CORRAL_SHARED       dir holding vendor/ (default: <repo>/../shared)
#   XDG_CACHE_HOME      venv cache root (default: ~/.cache)
#   CORRAL_KEEP_TMP=1   keep the temp dir (sockets, state, daemon log)
#   CORRAL_QREXEC_SERVICES_DIR  dir with corral's executable
#                       admin.vm.volume.Import{,WithSize} services; when unset,
#                       the import test uses its own shim (see test file)
#   PYTHON              python3 interpreter used to create the venv
#   CORRAL_TEST_TIMEOUT whole pytest run limit in seconds (default 1200)
#   CORRAL_CALL_TIMEOUT per Admin API call socket timeout (default 60)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)

if [ $# -lt 1 ]; then
    echo "usage: $0 <path-to-corrald-binary> [pytest args...]" >&2
    exit 2
fi
CORRALD=$1
shift

SHARED=${CORRAL_SHARED:-$REPO_ROOT/../shared}
TARBALL=""
for f in "$SHARED"/vendor/qubes-core-admin-client-*.tar.gz; do
    [ -f "$f" ] && { TARBALL=$f; break; }
done
if [ -z "$TARBALL" ]; then
    echo "SKIP: qubesadmin vendor tarball not found"
    exit 0
fi

case "$CORRALD" in
    /*) ;;
    *) CORRALD="$PWD/$CORRALD" ;;
esac
if [ ! -x "$CORRALD" ]; then
    echo "error: corrald binary not found or not executable: $CORRALD" >&2
    exit 2
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found" >&2
    exit 2
fi
if ! command -v column >/dev/null 2>&1; then
    # qubesadmin.tools.print_table pipes every table through column(1)
    echo "error: column(1) (util-linux / bsdextrautils) is required" >&2
    exit 2
fi

# ---- venv (cached by tarball hash + python version) --------------------------
TAR_HASH=$(sha256sum "$TARBALL" | cut -c1-16)
PYVER=$("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/corral-qubesadmin-venv
VENV=$CACHE_ROOT/$TAR_HASH-$PYVER
if [ ! -f "$VENV/.corral-ok" ]; then
    echo "creating venv $VENV" >&2
    mkdir -p "$CACHE_ROOT"
    rm -rf "$VENV"
    # create in place of the final path: venv scripts embed their own path
    if ! "$PYTHON" -m venv "$VENV"; then
        echo "error: python venv creation failed (install python3-venv?)" >&2
        rm -rf "$VENV"
        exit 2
    fi
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
            lxml pyyaml pytest >&2; then
        echo "error: pip install lxml pyyaml pytest failed" >&2
        rm -rf "$VENV"
        exit 2
    fi
    touch "$VENV/.corral-ok"
fi
PY=$VENV/bin/python

# ---- temp dir, client ---------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/corral-qubesadmin.XXXXXX")
DAEMON_PID=""
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if [ "${CORRAL_KEEP_TMP:-0}" = 1 ]; then
        echo "kept temp dir: $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/client"
tar -xzf "$TARBALL" -C "$T/client"
CLIENT_DIR=$(dirname "$(find "$T/client" -maxdepth 3 -type d -name qubesadmin \
    -path '*/qubesadmin' | head -n1)")
if [ ! -f "$CLIENT_DIR/qubesadmin/app.py" ]; then
    echo "error: qubesadmin package not found in $TARBALL" >&2
    exit 2
fi
# QubesArgumentParser reads importlib.metadata.metadata("qubesadmin") for
# --version, so every tool needs distribution metadata next to the package.
CLIENT_VERSION=$(cat "$CLIENT_DIR/version" 2>/dev/null || echo 0)
mkdir -p "$CLIENT_DIR/qubesadmin-$CLIENT_VERSION.dist-info"
cat >"$CLIENT_DIR/qubesadmin-$CLIENT_VERSION.dist-info/METADATA" <<EOF
Metadata-Version: 2.1
Name: qubesadmin
Version: $CLIENT_VERSION
Summary: Qubes Admin API package
Author-email: Invisible Things Lab <marmarek@invisiblethingslab.com>
License: LGPL-2.1-only
EOF

# ---- daemon -------------------------------------------------------------------
ADMIN_SOCK=$T/qubesd.sock
INTERNAL_SOCK=$T/qubesd.internal.sock
mkdir -p "$T/state"
"$CORRALD" --admin-socket "$ADMIN_SOCK" --internal-socket "$INTERNAL_SOCK" \
    --state-dir "$T/state" --http 127.0.0.1:0 >"$T/corrald.log" 2>&1 &
DAEMON_PID=$!

deadline=$((SECONDS + 20))
while [ ! -S "$ADMIN_SOCK" ]; do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "error: corrald exited before creating $ADMIN_SOCK; log:" >&2
        tail -n 50 "$T/corrald.log" >&2
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        echo "error: timeout (20 s) waiting for $ADMIN_SOCK; log:" >&2
        tail -n 50 "$T/corrald.log" >&2
        exit 1
    fi
    sleep 0.1
done

# ---- the volume import services, from the corral binary beside corrald -------
SERVICES_DIR="$T/qubes-rpc"
"$(dirname "$CORRALD")/corral" install-services --dir "$SERVICES_DIR" >/dev/null

# ---- tests --------------------------------------------------------------------
(
    cd "$HERE" &&
    env CORRAL_ADMIN_SOCKET="$ADMIN_SOCK" \
        CORRAL_QREXEC_SERVICES_DIR="$SERVICES_DIR" \
        CORRAL_INTERNAL_SOCKET="$INTERNAL_SOCK" \
        CORRAL_STATE_DIR="$T/state" \
        PYTHONPATH="$CLIENT_DIR${PYTHONPATH:+:$PYTHONPATH}" \
        PYTHONDONTWRITEBYTECODE=1 \
        timeout -k 10 "${CORRAL_TEST_TIMEOUT:-1200}" \
        "$PY" -m pytest -q -p no:cacheprovider --rootdir "$HERE" \
            "$HERE/test_qvm_tools.py" "$@"
)
RC=$?

if [ $RC -ne 0 ]; then
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "corrald is no longer running!" >&2
    fi
    echo "---- corrald log (last 80 lines of $T/corrald.log) ----" >&2
    tail -n 80 "$T/corrald.log" >&2
fi
exit $RC
