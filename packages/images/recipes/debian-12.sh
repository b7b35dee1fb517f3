#!/usr/bin/env bash
# Builds the "debian-12" guest: Debian bookworm (minbase + systemd, OpenSSH, cloud-init, git,
# python3) on a self-bootable disk. The disk has an MBR, a FAT boot partition with SYSLINUX,
# the kernel and initrd, and an ext4 root partition, so SeaBIOS boots it with no -kernel,
# exactly like a downloaded cloud image.
#
# No loop device and no mount of the image: the root filesystem is written with
# `mkfs.ext4 -d`, the boot partition with mtools, and SYSLINUX (from its .debs, unpacked,
# not installed) writes its boot sector into the FAT file. debootstrap itself needs root.
#
# Usage: debian-12.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   DEBIAN_CONFIGURE (path of debian-configure.sh), SUITE, MIRROR, SECURITY_MIRROR,
#        DEB_CACHE (debootstrap's .deb cache, kept between builds), DISK_SIZE_MIB, BOOT_SIZE_MIB, PACKAGES (comma-separated, for --include)
# Prints "::phase <name> <detail>" lines for progress.
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${DEBIAN_CONFIGURE:?}" "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${DEB_CACHE:?}" "${DISK_SIZE_MIB:?}" "${BOOT_SIZE_MIB:?}" "${PACKAGES:?}"
phase() { echo "::phase $*"; }
# Make SIGTERM (an aborted build) run the EXIT trap that unmounts the chroot's /proc.
trap 'exit 143' TERM INT
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
R=$W/rootfs

# ---- 1. debootstrap ---------------------------------------------------------------
phase debootstrap "$SUITE minbase"
mkdir -p "$DEB_CACHE"
debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$PACKAGES" "$SUITE" "$R" "$MIRROR" \
  > "$W/debootstrap.log" 2>&1 || { tail -n 30 "$W/debootstrap.log" >&2; exit 1; }

# ---- 2. security updates ----------------------------------------------------------
phase configuring "security updates"
mount -t proc proc "$R/proc"
trap 'umount "$R/proc" 2>/dev/null || true' EXIT
# shellcheck source=debian-configure.sh
. "$DEBIAN_CONFIGURE"
debian_update "$R" "$W/apt.log"
umount "$R/proc"
trap - EXIT
KVER=$(ls "$R/lib/modules" | sort -V | tail -n1)

# ---- 3. configure -----------------------------------------------------------------
phase configuring "systemd, ssh, cloud-init"
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
debian_configure "$R" "$ROOT_UUID"

# ---- 4. bootloader ----------------------------------------------------------------
phase downloading-packages "syslinux"
mkdir -p "$W/debs" "$W/sl"
(cd "$W/debs" && apt-get download -q syslinux syslinux-common 2>&1 | grep -v 'unsandboxed' || true)
for deb in "$W"/debs/*.deb; do dpkg-deb -x "$deb" "$W/sl"; done

phase making-disk "boot partition"
BOOT_START=2048                       # sectors: the first partition starts at 1 MiB
BOOT_SECTORS=$((BOOT_SIZE_MIB * 2048))
ROOT_START=$((BOOT_START + BOOT_SECTORS))
ROOT_MIB=$((DISK_SIZE_MIB - 1 - BOOT_SIZE_MIB))
cp "$R/boot/vmlinuz-$KVER" "$W/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$W/initrd.img"
cat > "$W/syslinux.cfg" <<CFG
DEFAULT debian
PROMPT 0
TIMEOUT 0
SERIAL 0 115200
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$ROOT_UUID ro console=ttyS0,115200
CFG
# -h: the FAT's hidden-sector count must be its offset on the disk, or the boot sector
# cannot find ldlinux.sys once the partition is copied into place.
mkfs.vfat -n BOOT -h "$BOOT_START" -C "$W/boot.img" $((BOOT_SIZE_MIB * 1024)) >/dev/null
"$W/sl/usr/bin/syslinux" --install "$W/boot.img"
MTOOLS_SKIP_CHECK=1 mcopy -i "$W/boot.img" "$W/vmlinuz" "$W/initrd.img" "$W/syslinux.cfg" ::/

phase making-disk "root filesystem ($ROOT_MIB MiB ext4)"
mkfs.ext4 -q -F -L root -U "$ROOT_UUID" -d "$R" "$W/root.img" "${ROOT_MIB}M"

phase making-disk "partition table and qcow2"
truncate -s "${DISK_SIZE_MIB}M" "$W/disk.raw"
sfdisk -q "$W/disk.raw" <<PART
label: dos
start=$BOOT_START, size=$BOOT_SECTORS, type=c, bootable
start=$ROOT_START, type=83
PART
dd if="$W/sl/usr/lib/syslinux/mbr/mbr.bin" of="$W/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$W/boot.img" of="$W/disk.raw" bs=512 seek="$BOOT_START" conv=notrunc,sparse status=none
dd if="$W/root.img" of="$W/disk.raw" bs=1M seek=$((ROOT_START / 2048)) conv=notrunc,sparse status=none
qemu-img convert -O qcow2 "$W/disk.raw" "$OUT/disk.qcow2"
printf '%s\n' "$KVER" > "$OUT/kernel-version"
