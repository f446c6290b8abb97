#!/usr/bin/env bash
# End-to-end check of the test guest with plain virsh (no Corral): build the assets, start a private
# libvirtd, boot a transient TCG guest from them, wait for CORRAL-GUEST-READY on its serial console,
# shut it down through the ACPI power button (`virsh shutdown`), then boot it again and `virsh destroy` it,
# and stop libvirtd. Prints a timing line per step. Exit 0 only if all of that worked.
#
#   usage: tests/guest/smoke.sh
#
# Environment: CORRAL_GUEST_DIR  assets directory (default /var/tmp/corral-guest, kept between runs)
#              SMOKE_DIR         work directory (default a new /tmp/corral-smoke.XXXXXX, removed on success)
#              SMOKE_MACHINE     QEMU machine type (default pc, i.e. i440fx; q35 works too)
#              SMOKE_DESTROY=0   skip the second boot and `virsh destroy`
#              SMOKE_KEEP=1      keep the work directory
# Needs root and a free /run/libvirt/libvirt-sock (no other libvirtd running).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ASSETS=${CORRAL_GUEST_DIR:-/var/tmp/corral-guest}
W=${SMOKE_DIR:-$(mktemp -d /tmp/corral-smoke.XXXXXX)}
mkdir -p "$W"
W=$(cd "$W" && pwd)
NAME=corral-smoke-$$
MARKER=CORRAL-GUEST-READY
V=(timeout 30 virsh -q -c qemu:///system)

usec() { echo "${EPOCHREALTIME//[.,]/}"; }
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
T0=$(usec)
TS=$T0
step() {
	local now
	now=$(usec)
	printf 'smoke: %-46s %6ss  (total %ss)\n' "$1" "$(secs $((now - TS)))" "$(secs $((now - T0)))"
	TS=$now
}
# wait_for <seconds> <what> <command...>: polls the command every 50 ms
wait_for() {
	local end=$(($(usec) + $1 * 1000000)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		(($(usec) < end)) || {
			echo "smoke: timed out waiting for $what" >&2
			return 1
		}
		sleep 0.05
	done
}
gone() { ! "${V[@]}" domid "$NAME"; }

DAEMON=
cleanup() {
	local rc=$?
	trap - EXIT
	if [[ -n $DAEMON ]]; then
		gone >/dev/null 2>&1 || "${V[@]}" destroy "$NAME" >/dev/null 2>&1 || true
		"$HERE/libvirtd.sh" stop "$W/libvirtd" >/dev/null || rc=1
	fi
	if ((rc != 0)); then
		echo "smoke: FAILED; console logs and daemon logs are in $W" >&2
		for f in "$W"/console-*.log; do [[ -e $f ]] && sed "s|^|  ${f##*/}: |" "$f" >&2; done
	elif [[ -z ${SMOKE_KEEP:-} && -z ${SMOKE_DIR:-} ]]; then
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || {
	echo "smoke: must run as root" >&2
	exit 1
}

"$HERE/build-assets.sh" "$ASSETS" | sed 's/^/  /'
step "build-assets.sh"

DAEMON=1
"$HERE/libvirtd.sh" start "$W/libvirtd" | sed 's/^/  /'
step "libvirtd.sh start"

# A small sparse raw disk, so the guest also proves its virtio modules (it lists disks on the console).
truncate -s 16M "$W/disk.img"
# domain_xml <console file>: type 'qemu' (TCG). Never 'kvm' here: guests hang under the host's kvm_pvm.
domain_xml() {
	cat <<EOF
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='${SMOKE_MACHINE:-pc}'>hvm</type>
    <kernel>$ASSETS/vmlinuz</kernel>
    <initrd>$ASSETS/initramfs</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$W/disk.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='$1'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$1'/>
      <target type='serial' port='0'/>
    </console>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# 1. Boot, marker, ACPI power button.
C1=$W/console-1.log
domain_xml "$C1" >"$W/guest.xml"
"${V[@]}" create "$W/guest.xml" >/dev/null
step "virsh create (transient, TCG, 128 MiB)"
wait_for 60 "$MARKER in $C1" grep -aq "^$MARKER" "$C1"
step "boot -> $MARKER"
grep -a '^corral-guest:' "$C1" | sed 's/^/  guest: /'
grep -aq 'disks=vda:32768' "$C1" || {
	echo "smoke: the guest did not see its 16 MiB virtio disk" >&2
	exit 1
}
"${V[@]}" shutdown "$NAME" >/dev/null
wait_for 30 "$NAME to power off" gone
step "virsh shutdown -> powered off"
grep -aq '^CORRAL-GUEST-POWER-BUTTON' "$C1" || {
	echo "smoke: the guest stopped, but not through its power button handler" >&2
	exit 1
}

# 2. Boot again, destroy (no guest cooperation involved).
if [[ ${SMOKE_DESTROY:-1} != 0 ]]; then
	C2=$W/console-2.log
	domain_xml "$C2" >"$W/guest.xml"
	"${V[@]}" create "$W/guest.xml" >/dev/null
	wait_for 60 "$MARKER in $C2" grep -aq "^$MARKER" "$C2"
	step "second boot -> $MARKER"
	"${V[@]}" destroy "$NAME" >/dev/null
	wait_for 30 "$NAME to be gone" gone
	step "virsh destroy -> gone"
fi

"$HERE/libvirtd.sh" stop "$W/libvirtd" | sed 's/^/  /'
DAEMON=
step "libvirtd.sh stop"
echo "smoke: OK"
