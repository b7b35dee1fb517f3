#!/usr/bin/env bash
# Builds "debian-12-fast": Debian bookworm (systemd, build tools) for the fast boot paths — Debian's
# cloud kernel entered through PVH on microvm, an initramfs of busybox and four modules that only
# mounts the ext4 root and starts systemd (debian-12-fast-init.sh), and the key agent of tiny-fast
# (tiny-fast-init.sh, unchanged) as a systemd unit that starts dropbear through fresh-start once the
# per-job keys, clock and entropy came. No cloud-init, no PAM on the SSH path, systemd trimmed to
# what a job needs. Decision 0009 says why (and why not our own kernel yet).
#
# The disk is a bare ext4 filesystem (no partition table, no bootloader), written with
# `mkfs.ext4 -d` from the debootstrapped tree: no loop device, no mount. debootstrap needs root.
#
# Usage: debian-12-fast.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   DEBIAN_CONFIGURE (debian-configure.sh: the updates and what every Debian guest of ours
#        shares with this one), SUITE, MIRROR, SECURITY_MIRROR, DEB_CACHE (debootstrap's .deb cache, kept between builds),
#        DISK_SIZE_MIB, PACKAGES (comma-separated, for --include)
#        GUEST_INIT (tiny-fast-init.sh, the key agent), FRESH_START_C, JOB_COMMANDS_C, DROPBEAR_WRAPPER,
#        INITRAMFS_INIT (debian-12-fast-init.sh), KERNEL_META, INITRAMFS_MODULES (in load order)
# Prints "::phase <name> <detail>" lines for progress.
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${DEBIAN_CONFIGURE:?}" "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${DEB_CACHE:?}" "${DISK_SIZE_MIB:?}" "${PACKAGES:?}"
: "${GUEST_INIT:?}" "${FRESH_START_C:?}" "${JOB_COMMANDS_C:?}" "${DROPBEAR_WRAPPER:?}" "${INITRAMFS_INIT:?}" "${KERNEL_META:?}" "${INITRAMFS_MODULES:?}"
phase() { echo "::phase $*"; }
# Make SIGTERM (an aborted build) run the EXIT trap that unmounts the chroot's /proc.
trap 'exit 143' TERM INT
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
for tool in gcc busybox lz4; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done

# ---- 1. debootstrap and security updates ------------------------------------------
R=$W/rootfs
phase debootstrap "$SUITE minbase"
mkdir -p "$DEB_CACHE"
debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$PACKAGES" "$SUITE" "$R" "$MIRROR" \
  > "$W/debootstrap.log" 2>&1 || { tail -n 30 "$W/debootstrap.log" >&2; exit 1; }
phase configuring "security updates, kernel"
mount -t proc proc "$R/proc"
trap 'umount "$R/proc" 2>/dev/null || true' EXIT
# shellcheck source=debian-configure.sh
. "$DEBIAN_CONFIGURE"
# The kernel after the upgrade, so it is the newest; its modules stay in the root for udev. No
# initramfs of Debian's (INITRD=No, as the kernel's hook reads it): ours replaces it.
INITRD=No debian_update "$R" "$W/apt.log" "$KERNEL_META"
umount "$R/proc"
trap - EXIT
KVER=$(ls "$R/lib/modules" | sort -V | tail -n1)
# The SSH server the agent starts is this wrapper, which runs Debian's dropbear; a diversion keeps
# dpkg from putting the binary back over it on an upgrade.
chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/sbin/dropbear.real --add /usr/sbin/dropbear
install -m 755 "$DROPBEAR_WRAPPER" "$R/usr/sbin/dropbear"
# The same wrapper starts the job's commands on the agent's channel (it looks at its name).
mkdir -p "$R/usr/lib/solstice"
install -m 755 "$DROPBEAR_WRAPPER" "$R/usr/lib/solstice/job-commands"

# ---- 2. configure -----------------------------------------------------------------
phase configuring "systemd, key agent, dropbear"
debian_common "$R"
# The initramfs mounts the root read-write (/dev/vda): nothing for fstab to do.
echo '# the root filesystem /dev/vda is mounted read-write by the initramfs' > "$R/etc/fstab"
# PID 1 makes a transient machine-id at each boot (debian_common emptied the file), and the SSH
# wrapper a new one per job.
rm -f "$R/var/lib/systemd/random-seed"
# The journal lives in memory: a one-job VM's disk is thrown away, and writing it costs the job.
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > "$R/etc/systemd/journald.conf.d/50-solstice.conf"
ln -sf /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"
# Units a one-job VM does not need beyond debian_common's timers, each one boot time or work
# racing the job (decision 0009):
# - systemd-random-seed: it would credit a seed file shared by every VM of the image; the agent's
#   RESEED gives each guest host entropy with a forced reseed instead;
# - logind, getty, utmp: no login sessions (dropbear runs commands without PAM);
# - first-boot and "needs update" work (ldconfig, hwdb, catalog, sysusers), done at build time;
# - acpid's own units: the agent starts acpid (the power button) itself;
# - modules-load: udev loads the modules of the devices there are.
debian_mask "$R" systemd-random-seed.service systemd-logind.service getty.target console-getty.service \
  systemd-update-utmp.service systemd-update-utmp-runlevel.service \
  systemd-machine-id-commit.service ldconfig.service \
  systemd-hwdb-update.service systemd-journal-catalog-update.service \
  systemd-update-done.service systemd-sysusers.service \
  acpid.service acpid.socket acpid.path systemd-modules-load.service \
  systemd-pstore.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount

# The key agent (tiny-fast's, unchanged) and fresh-start.
mkdir -p "$R/usr/lib/solstice" "$R/root/.ssh" "$R/etc/dropbear" "$R/etc/acpi"
chmod 700 "$R/root/.ssh"
install -m 755 "$GUEST_INIT" "$R/usr/lib/solstice/key-agent"
gcc -static -Os -o "$R/usr/sbin/fresh-start" "$FRESH_START_C"
gcc -static -Os -o "$R/usr/sbin/job-commands" "$JOB_COMMANDS_C"
strip "$R/usr/sbin/fresh-start" "$R/usr/sbin/job-commands"
# QMP system_powerdown (a debug VM's graceful end) reaches acpid as the power button; the agent
# starts acpid with `-c /etc/acpi`, the directory it reads rules from.
printf 'event=button/power.*\naction=/bin/systemctl --no-block poweroff\n' > "$R/etc/acpi/power-button"
cat > "$R/etc/systemd/system/solstice-agent.service" <<'UNIT'
[Unit]
Description=Solstice CI key agent (keys, clock, entropy over virtio-serial, then dropbear)
# Default dependencies: it starts once sysinit and basic are up, so a template saved while the
# agent waits has finished its boot, and a restored guest has no boot work left.

[Service]
Type=simple
ExecStart=/usr/lib/solstice/key-agent
# The agent exits after READY; dropbear, and every job process under it, stay in this unit.
RemainAfterExit=yes
# A job process the kernel kills for memory must not take the SSH server with it.
OOMPolicy=continue
# What a job's processes get, as on GitHub's runners.
LimitNOFILE=65536
TasksMax=infinity

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/solstice-agent.service "$R/etc/systemd/system/multi-user.target.wants/solstice-agent.service"
# Every SSH command starts root's login shell: dash starts in a fraction of bash's time under TCG.
# Steps still get bash as their default shell.
sed -i 's#^root:\(.*\):/bin/bash$#root:\1:/bin/sh#' "$R/etc/passwd"
grep -q '^root:.*:/bin/sh$' "$R/etc/passwd" || { echo "could not make /bin/sh root's login shell" >&2; exit 1; }
debian_slim "$R"

# ---- 3. disk ----------------------------------------------------------------------
phase making-disk "root filesystem (${DISK_SIZE_MIB} MiB ext4) and qcow2"
mkfs.ext4 -q -F -L root -d "$R" "$W/root.img" "${DISK_SIZE_MIB}M"
qemu-img convert -O qcow2 "$W/root.img" "$OUT/disk.qcow2"
chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' > "$OUT/packages"

# ---- 4. kernel and initramfs -----------------------------------------------------
phase packing "kernel $KVER and initramfs"
cp "$R/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
# The uncompressed kernel for QEMU's PVH entry (no decompressor in the guest): Debian's bzImage
# carries an LZ4 stream, found by its magic as the kernel's own extract-vmlinux does.
offset=$(grep -abo $'\x02\x21\x4c\x18' "$OUT/vmlinuz" | head -n1 | cut -d: -f1)
if [ -n "$offset" ] && tail -c +$((offset + 1)) "$OUT/vmlinuz" | lz4 -dc > "$W/vmlinux" 2>/dev/null; then :; fi
if readelf -n "$W/vmlinux" 2>/dev/null | grep -qE '^ *Xen .*\(0x00000012\)'; then
  cp "$W/vmlinux" "$OUT/vmlinux"
else
  echo "no PVH entry found in $KVER: the image boots the bzImage" >&2
fi
I=$W/initramfs
mkdir -p "$I/bin" "$I/etc" "$I/lib/modules" "$I/proc" "$I/sys" "$I/dev" "$I/newroot"
cp "$(command -v busybox)" "$I/bin/busybox"
for applet in sh mount umount mkdir insmod sleep cat echo switch_root; do ln -s busybox "$I/bin/$applet"; done
install -m 755 "$INITRAMFS_INIT" "$I/init"
# Each module after the ones it needs, as modules.dep lists them (a dependency's dependencies come
# after it there, so the list is read backwards); each once.
DEP=$R/lib/modules/$KVER/modules.dep
for m in $INITRAMFS_MODULES; do
  line=$(grep -E "(^|/)$m\.ko:" "$DEP" | head -n1)
  [ -n "$line" ] || { echo "module $m is not in $KVER's modules.dep" >&2; exit 1; }
  for path in $(printf '%s\n' ${line#*:} | tac) "${line%%:*}"; do
    name=$(basename "$path" .ko)
    grep -qx "$name" "$I/etc/modules-order" 2>/dev/null && continue
    cp "$R/lib/modules/$KVER/$path" "$I/lib/modules/$name.ko"
    echo "$name" >> "$I/etc/modules-order"
  done
done
# Uncompressed: under TCG copying is cheaper than decompressing.
(cd "$I" && find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 2>/dev/null) > "$OUT/initramfs.cpio"
echo "$KERNEL_META $KVER" > "$OUT/kernel-package"
