#!/usr/bin/env bash
# A private libvirt daemon for tests, without systemd: monolithic libvirtd + virtlogd (Debian 12 has no
# virtqemud), serving qemu:///system on the standard socket /run/libvirt/libvirt-sock.
#
#   usage: tests/guest/libvirtd.sh start|stop|status STATE_DIR
#
# start   creates the libvirt-qemu user/group if missing (libvirt resolves it before reading qemu.conf),
#         writes its configuration under STATE_DIR, starts virtlogd and libvirtd detached, and returns once
#         `virsh -c qemu:///system version` answers (at most CORRAL_LIBVIRTD_TIMEOUT seconds, default 30; a
#         first start probes QEMU's capabilities for ~8 s, later ones take ~0.2 s). A no-op when already running.
# stop    destroys the guests still running (unless CORRAL_LIBVIRTD_KEEP_GUESTS=1: they survive a daemon
#         restart), then stops both daemons by PID: SIGTERM, SIGKILL after 15 s. A no-op when not running.
# status  exit 0 and print the PIDs when both daemons run.
#
# The host's /etc/libvirt is left alone: libvirtd runs in its own mount namespace where STATE_DIR/etc is
# bind-mounted over /etc/libvirt. So qemu.conf (QEMU as root), and every domain, network or pool defined
# persistently, live in STATE_DIR. Where mount namespaces are unavailable it falls back to the host's
# /etc/libvirt and writes /etc/libvirt/qemu.conf only if it does not exist. STATE_DIR/mode says which.
# Files: STATE_DIR/{libvirtd,virtlogd}.{pid,log}, STATE_DIR/etc/{libvirtd,qemu}.conf, STATE_DIR/virtlogd.conf.
set -euo pipefail

usage() {
	sed -n '5p' "${BASH_SOURCE[0]}" | cut -c3- >&2
	exit 2
}
[[ $# == 2 && $1 =~ ^(start|stop|status)$ && -n $2 ]] || usage
CMD=$1
mkdir -p "$2"
S=$(cd "$2" && pwd)
URI=qemu:///system
SOCK=/run/libvirt/libvirt-sock
LOGD_SOCK=/run/libvirt/virtlogd-sock
TIMEOUT=${CORRAL_LIBVIRTD_TIMEOUT:-30}

usec() { echo "${EPOCHREALTIME//[.,]/}"; }
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
T0=$(usec)
say() { echo "libvirtd.sh: $*"; }
die() {
	echo "libvirtd.sh: error: $*" >&2
	exit 1
}
virsh_() { timeout 10 virsh -q -c "$URI" "$@"; }

# pid_of <daemon>: its PID from STATE_DIR/<daemon>.pid, if that process runs and is that daemon.
pid_of() {
	local pid
	pid=$(cat "$S/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
	[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
	echo "$pid"
}

# stop_daemon <daemon>: SIGTERM, then SIGKILL after 15 s; returns 1 when it had to be killed.
stop_daemon() {
	local pid i
	pid=$(pid_of "$1") || {
		rm -f "$S/$1.pid"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		pid_of "$1" >/dev/null || break
		sleep 0.05
	done
	if pid_of "$1" >/dev/null; then
		say "$1 ($pid) ignored SIGTERM for 15 s; SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_of "$1" >/dev/null || break
			sleep 0.05
		done
		rm -f "$S/$1.pid"
		return 1
	fi
	rm -f "$S/$1.pid"
}

exec 9>"$S/.lock"
flock -w 60 9 || die "another libvirtd.sh holds $S/.lock"

case $CMD in
status)
	if L=$(pid_of libvirtd) && V=$(pid_of virtlogd); then
		say "running: libvirtd $L, virtlogd $V ($(cat "$S/mode" 2>/dev/null))"
		exit 0
	fi
	say "not running"
	exit 1
	;;
stop)
	if pid_of libvirtd >/dev/null && [[ -z ${CORRAL_LIBVIRTD_KEEP_GUESTS:-} ]]; then
		for d in $(virsh_ list --name 2>/dev/null); do
			say "destroying guest $d"
			virsh_ destroy "$d" >/dev/null 2>&1 || true
		done
	fi
	killed=
	stop_daemon libvirtd || killed=1
	# A killed libvirtd leaves its sockets behind, and a socket file alone makes clients (corrald
	# included) believe a daemon listens.
	[[ -z $killed ]] || rm -f "$SOCK" "$SOCK-ro" /run/libvirt/libvirt-admin-sock
	stop_daemon virtlogd || rm -f "$LOGD_SOCK" /run/libvirt/virtlogd-admin-sock
	say "stopped ($(secs $(($(usec) - T0)))s)"
	exit 0
	;;
esac

# ---- start

fail() { # fail <message> <log>: stop what this call started, show the log's end, exit
	tail -n 20 "$2" >&2
	stop_daemon libvirtd || true
	stop_daemon virtlogd || true
	die "$1 (log: $2)"
}
wait_ready() { # until `virsh version` answers and virtlogd listens, a daemon dies, or the time is up
	local end=$(($(usec) + TIMEOUT * 1000000))
	until virsh_ version >/dev/null 2>&1 && [[ -S $LOGD_SOCK ]]; do
		pid_of libvirtd >/dev/null || fail "libvirtd exited" "$S/libvirtd.log"
		[[ -S $LOGD_SOCK ]] || kill -0 "${VIRTLOGD_CHILD:-$(pid_of virtlogd)}" 2>/dev/null ||
			fail "virtlogd exited" "$S/virtlogd.log"
		(($(usec) < end)) || fail "libvirtd not ready after ${TIMEOUT}s" "$S/libvirtd.log"
		sleep 0.1
	done
}

if pid_of libvirtd >/dev/null && pid_of virtlogd >/dev/null; then
	wait_ready
	say "already running: libvirtd $(pid_of libvirtd), virtlogd $(pid_of virtlogd)"
	exit 0
fi
if ! pid_of libvirtd >/dev/null && [[ -S $SOCK ]] && virsh_ version >/dev/null 2>&1; then
	die "another libvirt daemon already answers on $SOCK; stop it first"
fi

# What libvirt-daemon-system would have created: the default QEMU user. Unused (qemu.conf runs QEMU as
# root) but looked up before qemu.conf is read; the QEMU driver fails to start without it.
if ! getent passwd libvirt-qemu >/dev/null; then
	getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
	useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
	say "created user libvirt-qemu"
fi

mkdir -p "$S/etc" /etc/libvirt /run/libvirt
cat >"$S/etc/libvirtd.conf" <<'EOF'
# Written by Corral's tests/guest/libvirtd.sh: libvirt's defaults (UNIX sockets only, root needs no auth).
EOF
cat >"$S/etc/qemu.conf" <<'EOF'
# Written by Corral's tests/guest/libvirtd.sh. QEMU runs as root: the libvirt-qemu user exists only to
# satisfy the driver, and /dev/kvm (unused: guests are type 'qemu', TCG) is often 0600 root.
user = "root"
group = "root"
EOF
cat >"$S/virtlogd.conf" <<'EOF'
# Written by Corral's tests/guest/libvirtd.sh: virtlogd's defaults.
EOF

if ! pid_of virtlogd >/dev/null; then
	setsid virtlogd --config "$S/virtlogd.conf" --pid-file "$S/virtlogd.pid" \
		</dev/null >>"$S/virtlogd.log" 2>&1 9>&- &
	VIRTLOGD_CHILD=$!
fi

LIBVIRTD=$(command -v libvirtd) || die "libvirtd not installed (apt-get install libvirt-daemon libvirt-daemon-driver-qemu)"
if unshare --mount --propagation private true 2>/dev/null; then
	echo "private: $S/etc mounted over /etc/libvirt in libvirtd's mount namespace" >"$S/mode"
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid unshare --mount --propagation private -- sh -c 'mount --bind "$1" /etc/libvirt && shift && exec "$@"' \
		sh "$S/etc" "$LIBVIRTD" --config "$S/etc/libvirtd.conf" --pid-file "$S/libvirtd.pid" \
		</dev/null >>"$S/libvirtd.log" 2>&1 9>&- &
else
	echo "host: no mount namespaces; using the host's /etc/libvirt" >"$S/mode"
	if [[ ! -e /etc/libvirt/qemu.conf ]]; then
		cp "$S/etc/qemu.conf" /etc/libvirt/qemu.conf
		say "wrote /etc/libvirt/qemu.conf"
	fi
	setsid "$LIBVIRTD" --config "$S/etc/libvirtd.conf" --pid-file "$S/libvirtd.pid" \
		</dev/null >>"$S/libvirtd.log" 2>&1 9>&- &
fi
# libvirtd writes its pid file early; until then only $! (setsid and unshare exec, they do not fork) knows it.
for ((i = 0; i < 100; i++)); do
	pid_of libvirtd >/dev/null && break
	kill -0 $! 2>/dev/null || break
	sleep 0.05
done
pid_of libvirtd >/dev/null || fail "libvirtd did not start" "$S/libvirtd.log"
wait_ready
say "ready in $(secs $(($(usec) - T0)))s: libvirtd $(pid_of libvirtd), virtlogd $(pid_of virtlogd), $URI ($(cut -d: -f1 "$S/mode") config)"
