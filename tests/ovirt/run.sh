#!/usr/bin/env bash
# Black-box test: drive corrald's RHEV/oVirt v3 HTTP API with the real oVirt v3
# Python SDK (ovirt-engine-sdk-python 3.6, ported to Python 3 by the shared tool).
#
# Usage: tests/ovirt/run.sh <path-to-corrald> [extra pytest args...]
#
# Environment:
#   CORRAL_SHARED       dir holding tools/ovirt-sdk-py3.sh (default: <repo>/../shared)
#   XDG_CACHE_HOME      venv cache root (default: ~/.cache)
#   CORRAL_KEEP_TMP=1   keep the temp dir (sockets, state, daemon log)
#   PYTHON              python3 interpreter used to create the venv
#   CORRAL_TEST_TIMEOUT whole pytest run limit in seconds (default 600)
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
PORT_TOOL=$SHARED/tools/ovirt-sdk-py3.sh
if [ ! -f "$PORT_TOOL" ]; then
    echo "SKIP: $PORT_TOOL not found (it installs and ports the oVirt v3 SDK)"
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
CORRAL_CLI="$(dirname "$CORRALD")/corral"
if [ ! -x "$CORRAL_CLI" ]; then
    echo "error: the corral command is not beside corrald: $CORRAL_CLI (cargo build --bins)" >&2
    exit 2
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found" >&2
    exit 2
fi

# ---- venv (cached by the port tool's hash + python version) -----------------
TOOL_HASH=$(sha256sum "$PORT_TOOL" | cut -c1-16)
PYVER=$("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/corral-ovirt-venv
VENV=$CACHE_ROOT/$TOOL_HASH-$PYVER
if [ ! -f "$VENV/.corral-ok" ]; then
    echo "creating venv $VENV" >&2
    mkdir -p "$CACHE_ROOT"
    rm -rf "$VENV"
    # The tool creates the venv (in place of the final path: venv scripts embed their own path),
    # installs the SDK with lxml and pycurl, ports it to Python 3 and checks the port.
    if ! PYTHON="$PYTHON" bash "$PORT_TOOL" "$VENV" >&2; then
        echo "error: $PORT_TOOL failed" >&2
        rm -rf "$VENV"
        exit 2
    fi
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check pytest >&2; then
        echo "error: pip install pytest failed" >&2
        rm -rf "$VENV"
        exit 2
    fi
    touch "$VENV/.corral-ok"
fi
PY=$VENV/bin/python

# ---- temp dir, daemon ---------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/corral-ovirt.XXXXXX")
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

ADMIN_SOCK=$T/qubesd.sock
INTERNAL_SOCK=$T/qubesd.internal.sock
mkdir -p "$T/state"
"$CORRALD" --admin-socket "$ADMIN_SOCK" --internal-socket "$INTERNAL_SOCK" \
    --state-dir "$T/state" --libvirt-uri test:///default --http 127.0.0.1:0 \
    >"$T/corrald.log" 2>&1 &
DAEMON_PID=$!

# The HTTP address file is written once the door listens, after the sockets exist.
deadline=$((SECONDS + 20))
while [ ! -S "$INTERNAL_SOCK" ] || [ ! -s "$T/state/http-address" ]; do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "error: corrald exited before it was ready; log:" >&2
        tail -n 50 "$T/corrald.log" >&2
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        echo "error: timeout (20 s) waiting for corrald; log:" >&2
        tail -n 50 "$T/corrald.log" >&2
        exit 1
    fi
    sleep 0.1
done
HTTP_ADDRESS=$(cat "$T/state/http-address")

PASSWORD="sdk-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
if ! printf '%s\n' "$PASSWORD" | CORRAL_INTERNAL_SOCKET="$INTERNAL_SOCK" "$CORRAL_CLI" user add admin >&2; then
    echo "error: corral user add failed; log:" >&2
    tail -n 50 "$T/corrald.log" >&2
    exit 1
fi

# ---- tests --------------------------------------------------------------------
(
    cd "$HERE" &&
    env CORRAL_API_URL="http://$HTTP_ADDRESS/api" \
        CORRAL_API_USER="admin@internal" \
        CORRAL_API_PASSWORD="$PASSWORD" \
        CORRAL_ADMIN_SOCKET="$ADMIN_SOCK" \
        PYTHONDONTWRITEBYTECODE=1 \
        timeout -k 10 "${CORRAL_TEST_TIMEOUT:-600}" \
        "$PY" -W ignore::SyntaxWarning -m pytest -q -p no:cacheprovider --rootdir "$HERE" \
            "$HERE/test_sdk.py" "$@"
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
