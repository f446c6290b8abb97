#!/usr/bin/env bash
# Builds the tiny test guest: the Debian cloud kernel and a busybox initramfs whose /init prints
# CORRAL-GUEST-READY on the serial port and powers off on the ACPI power button (see README.md).
#
#   usage: tests/guest/build-assets.sh [OUT_DIR]      (default ${CORRAL_GUEST_DIR:-/var/tmp/corral-guest})
#
# OUT_DIR gets `vmlinuz`, `initramfs` (gzip'd newc cpio) and `.corral-guest-assets` (what was built from what),
# so it can serve directly as a kernel directory of a Corral `linux-kernel` pool (`<pool dir>/<kernel>/`).
# Nothing is installed on the host except, when missing, the `cpio` package (busybox's cpio is the fallback).
# Reruns are no-ops while the outputs exist and this script and rootfs/ are unchanged (FORCE=1 rebuilds).
# Environment: CORRAL_GUEST_KERNEL_PKG overrides the kernel package (default: what linux-image-cloud-amd64
# depends on), SOURCE_DATE_EPOCH the timestamps inside the initramfs (default 0).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/${BASH_SOURCE[0]##*/}
OUT=${1:-${CORRAL_GUEST_DIR:-/var/tmp/corral-guest}}
STAMP_NAME=.corral-guest-assets
# Modules the guest loads (their dependencies are added): the ACPI power button and its input events for
# acpid, and virtio so disks a test attaches show up (the guest lists them on the console).
MODULES=(button evdev virtio_pci virtio_blk)

usec() { echo "${EPOCHREALTIME//[.,]/}"; }
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
T0=$(usec)
TS=$T0
step() { # step <what>: prints how long it took since the previous step
	local now
	now=$(usec)
	printf 'build-assets: %-44s %6ss  (total %ss)\n' "$1" "$(secs $((now - TS)))" "$(secs $((now - T0)))"
	TS=$now
}
die() {
	echo "build-assets: error: $*" >&2
	exit 1
}

# What the outputs are built from: this script and the initramfs skeleton (names, types, executable bits, content).
inputs_hash() {
	cd "$HERE"
	{
		sha256sum <"$SELF"
		find rootfs -printf '%p %y %l\n' | LC_ALL=C sort
		find rootfs -type f -perm /111 | LC_ALL=C sort
		find rootfs -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	} | sha256sum | cut -d' ' -f1
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 9>"$OUT/.lock"
flock -w 300 9 || die "another build holds $OUT/.lock"

HASH=$(inputs_hash)
if [[ -z ${FORCE:-} && -s $OUT/vmlinuz && -s $OUT/initramfs ]] && grep -qx "inputs=$HASH" "$OUT/$STAMP_NAME" 2>/dev/null; then
	step "up to date ($(sed -n 's/^kernel_release=//p' "$OUT/$STAMP_NAME"))"
	echo "build-assets: $OUT/vmlinuz $OUT/initramfs"
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/corral-guest-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/root" "$WORK/initramfs"
# apt-get download drops to the _apt user when it can; let it write here (else it warns and runs unsandboxed).
chmod 755 "$WORK"
if [[ $(id -u) == 0 ]] && getent passwd _apt >/dev/null; then chown _apt "$WORK/debs"; fi

# 1. Download the kernel and busybox. `apt-get update` only when the package lists do not have them.
kernel_pkg() {
	if [[ -n ${CORRAL_GUEST_KERNEL_PKG:-} ]]; then
		echo "$CORRAL_GUEST_KERNEL_PKG"
	else
		apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
	fi
}
download() {
	local k
	k=$(kernel_pkg)
	[[ -n $k ]] || {
		echo "the package lists do not know linux-image-cloud-amd64" >"$WORK/download.log"
		return 1
	}
	(cd "$WORK/debs" && apt-get download -q=2 "$k" busybox-static) >"$WORK/download.log" 2>&1
}
if ! download; then
	echo "build-assets: download failed ($(tail -n1 "$WORK/download.log" 2>/dev/null)); running apt-get update" >&2
	apt-get update -qq
	download || { cat "$WORK/download.log" >&2; die "cannot download $(kernel_pkg) busybox-static"; }
fi
KDEB=$(compgen -G "$WORK/debs/linux-image-*.deb") || die "no kernel .deb downloaded"
BDEB=$(compgen -G "$WORK/debs/busybox-static_*.deb") || die "no busybox-static .deb downloaded"
step "download $(dpkg-deb -f "$KDEB" Package) + busybox-static"

# 2. Unpack (no maintainer scripts, nothing lands in /boot).
dpkg-deb -x "$KDEB" "$WORK/root"
dpkg-deb -x "$BDEB" "$WORK/root"
BB=$WORK/root/bin/busybox
KVER=$(cd "$WORK/root/lib/modules" && compgen -G '*') || die "no /lib/modules in the kernel package"
[[ $KVER != *$'\n'* ]] || die "several kernels in the package: $KVER"
[[ -f $WORK/root/boot/vmlinuz-$KVER && -x $BB ]] || die "vmlinuz-$KVER or bin/busybox missing"
step "unpack ($KVER)"

# 3. Initramfs tree: rootfs/ (init, acpid rules), busybox with a /bin link per applet, the modules.
#    (Links, not busybox's "standalone shell": that finds applets through /proc/self/exe, absent until
#    /init has mounted /proc.)
S=$WORK/initramfs
cp -R "$HERE/rootfs/." "$S/"
mkdir -p "$S/bin" "$S/dev" "$S/proc" "$S/sys" "$S/run" "$S/lib/modules"
cp "$BB" "$S/bin/busybox"
for a in $("$BB" --list); do
	[[ -e $S/bin/$a || -L $S/bin/$a ]] || ln -s busybox "$S/bin/$a"
done
# The kernel's built-in initramfs already has /dev/console; this copy keeps the archive self-sufficient.
[[ $(id -u) != 0 ]] || mknod -m 600 "$S/dev/console" c 5 1

MODDIR=$WORK/root/lib/modules/$KVER
declare -A KO=() SEEN=()
ORDER=()
while IFS= read -r f; do # module name (dashes as underscores) -> file
	n=${f##*/}
	n=${n%%.ko*}
	KO[${n//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst')
while IFS= read -r f; do # built into the kernel: nothing to load
	n=${f##*/}
	n=${n%%.ko*}
	KO[${n//-/_}]=builtin
done <"$MODDIR/modules.builtin"
add_module() { # add_module <name>: stage it after its dependencies (from its modinfo "depends=")
	local n=${1//-/_} src dst dep
	[[ -z ${SEEN[$n]:-} ]] || return 0
	SEEN[$n]=1
	src=${KO[$n]:-}
	[[ -n $src ]] || die "kernel $KVER has no module $n"
	[[ $src != builtin ]] || return 0
	dst=$S/lib/modules/$n.ko
	case $src in
	*.ko.xz) "$BB" xzcat "$src" >"$dst" ;;
	*.ko.zst) zstd -q -d -c "$src" >"$dst" ;;
	*) cp "$src" "$dst" ;;
	esac
	for dep in $(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
	ORDER+=("$n.ko")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" >"$S/etc/modules"

# Deterministic metadata: modes from the executable bit only, one fixed timestamp, root ownership (cpio -R).
find "$S" -type d -exec chmod 755 {} +
find "$S" -type f -perm /111 -exec chmod 755 {} +
find "$S" -type f ! -perm /111 -exec chmod 644 {} +
find "$S" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
step "initramfs tree (${#ORDER[@]} modules)"

# 4. Archive: sorted names, newc format, gzip without name/time.
if command -v cpio >/dev/null; then
	CPIO=(cpio --quiet -o -H newc -R 0:0 --reproducible)
elif [[ $(id -u) == 0 ]] && apt-get install -y -qq --no-install-recommends cpio >"$WORK/apt-cpio.log" 2>&1; then
	CPIO=(cpio --quiet -o -H newc -R 0:0 --reproducible)
	step "apt-get install cpio"
else
	echo "build-assets: no cpio package; using busybox cpio (same content, not byte-reproducible)" >&2
	CPIO=("$BB" cpio -o -H newc -R 0:0)
fi
(cd "$S" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | "${CPIO[@]}" 2>"$WORK/cpio.log") |
	gzip -9 -n >"$OUT/initramfs.tmp" || {
	cat "$WORK/cpio.log" >&2
	die "cpio failed"
}
cp "$WORK/root/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
mv -f "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv -f "$OUT/initramfs.tmp" "$OUT/initramfs"
cat >"$OUT/$STAMP_NAME.tmp" <<EOF
inputs=$HASH
kernel_package=$(dpkg-deb -f "$KDEB" Package)
kernel_package_version=$(dpkg-deb -f "$KDEB" Version)
kernel_release=$KVER
busybox_version=$(dpkg-deb -f "$BDEB" Version)
modules=${ORDER[*]}
vmlinuz_sha256=$(sha256sum <"$OUT/vmlinuz" | cut -d' ' -f1)
initramfs_sha256=$(sha256sum <"$OUT/initramfs" | cut -d' ' -f1)
EOF
mv -f "$OUT/$STAMP_NAME.tmp" "$OUT/$STAMP_NAME"
step "cpio.gz ($(du -k "$OUT/initramfs" | cut -f1) KiB) + vmlinuz ($(du -k "$OUT/vmlinuz" | cut -f1) KiB)"
echo "build-assets: $OUT/vmlinuz $OUT/initramfs"
