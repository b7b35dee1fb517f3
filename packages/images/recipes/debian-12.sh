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
# Env:   SUITE, MIRROR, SECURITY_MIRROR, DEB_CACHE (debootstrap's .deb cache, kept between
#        builds), DISK_SIZE_MIB, BOOT_SIZE_MIB, PACKAGES (comma-separated, for --include)
# Prints "::phase <name> <detail>" lines for progress.
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${DEB_CACHE:?}" "${DISK_SIZE_MIB:?}" "${BOOT_SIZE_MIB:?}" "${PACKAGES:?}"
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
# debootstrap only reads the release suite; a guest that runs untrusted jobs on the
# internet gets the security and point-release updates too (this also moves the kernel).
phase configuring "security updates"
cat > "$R/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
# No service may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
mount -t proc proc "$R/proc"
trap 'umount "$R/proc" 2>/dev/null || true' EXIT
chroot "$R" apt-get -q update > "$W/apt.log" 2>&1 || { tail -n 30 "$W/apt.log" >&2; exit 1; }
# No recommends: the new kernel would pull in apparmor, whose unit alone cost ~18 s of boot.
DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y --no-install-recommends \
  -o Dpkg::Options::=--force-confold dist-upgrade \
  >> "$W/apt.log" 2>&1 || { tail -n 30 "$W/apt.log" >&2; exit 1; }
# Keep only the newest kernel: the boot partition carries exactly one.
KVER=$(ls "$R/lib/modules" | sort -V | tail -n1)
for old in $(ls "$R/lib/modules" | sort -V | head -n -1); do
  DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y purge "linux-image-$old" >> "$W/apt.log" 2>&1
done
chroot "$R" apt-get clean
umount "$R/proc"
trap - EXIT
rm -f "$R/usr/sbin/policy-rc.d"

# ---- 3. configure -----------------------------------------------------------------
phase configuring "systemd, ssh, cloud-init"
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
echo debian > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 debian\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
printf 'UUID=%s / ext4 defaults,noatime,errors=remount-ro 0 1\n' "$ROOT_UUID" > "$R/etc/fstab"
# DHCP with systemd-networkd (part of systemd); cloud-init's network rendering is off.
cat > "$R/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
IPv6AcceptRA=no
NET
# QEMU user-net's resolver: without systemd-resolved nothing writes resolv.conf from DHCP.
echo 'nameserver 10.0.2.3' > "$R/etc/resolv.conf"
chroot "$R" systemctl enable -q systemd-networkd.service
# Nothing in a one-job VM should race the job for dpkg locks, disk or CPU.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer man-db.timer systemd-firstboot.service; do
  chroot "$R" systemctl mask -q "$unit" 2>/dev/null || true
done
# Every VM gets its own machine-id and its own (pinned, from the seed) SSH host key.
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
cat > "$R/etc/ssh/sshd_config.d/50-solstice.conf" <<'SSHD'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
SSHD
cat > "$R/etc/cloud/cloud.cfg.d/90-solstice.cfg" <<'CLOUD'
# The seed is always a NoCloud disk labelled cidata: do not probe cloud metadata services.
datasource_list: [ NoCloud, None ]
# The network comes from /etc/systemd/network/20-wired.network.
network: {config: disabled}
# minbase has no `locales`, so cc_locale's update-locale would fail (status: error).
locale: false
ssh_pwauth: false
CLOUD
rm -rf "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/var/log/*.log \
  "$R"/var/cache/debconf/*-old "$R"/var/lib/cloud/*

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
