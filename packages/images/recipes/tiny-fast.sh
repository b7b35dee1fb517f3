#!/usr/bin/env bash
# Builds "tiny-fast": the tiny guest laid out for the fast boot paths (BOOT-SPEED.md A, B, E, F).
# - The tiny recipe itself builds the system (so both guests carry the same userland).
# - KERNEL=own: the kernel is our own build of Debian's kernel source with every driver built in
#   (guest-kernel.sh, x86 only), entered through its PVH entry: no decompressor, no module loading,
#   and the initramfs carries no /lib/modules. KERNEL=debian (guests of other architectures): the
#   tiny recipe's Debian kernel and modules, loaded by the agent init.
# - /etc/rc.boot is the agent init: keys arrive over virtio-serial after boot, never from a seed,
#   which is what lets one booted-and-idle guest be saved once and restored for every job.
# - fresh-start, a static helper, sets the clock, forces the guest's CRNG to reseed (a restored
#   guest is a clone) and then becomes dropbear, in one process.
# - job-commands, a static server of the job's commands on the agent's channel (decision 0010).
# The initramfs stays an uncompressed cpio: under TCG copying is cheaper than gunzip.
#
# Usage: tiny-fast.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   TINY_RECIPE  path of tiny.sh       TINY_INIT  path of tiny-init.sh (tiny.sh's GUEST_INIT)
#        GUEST_INIT   path of the agent init (tiny-fast-init.sh)
#        FRESH_START_C  path of fresh-start.c  DISK_SIZE  size of the empty golden disk
#        JOB_COMMANDS_C path of job-commands.c
#        CROSS_PREFIX   the C toolchain's prefix for the guest's arch ("" for the host's own,
#                       aarch64-linux-gnu- for arm64: Debian's gcc-aarch64-linux-gnu)
#        KERNEL         own or debian (above); and everything tiny.sh reads
#        KERNEL_SCRIPT, KERNEL_CONFIG, KERNEL_CACHE, KERNEL_SOURCE_PACKAGE  see guest-kernel.sh
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${TINY_RECIPE:?}" "${TINY_INIT:?}" "${GUEST_INIT:?}" "${FRESH_START_C:?}" "${JOB_COMMANDS_C:?}" "${DISK_SIZE:?}" "${KERNEL:?}"
: "${CROSS_PREFIX=}"
phase() { echo "::phase $*"; }
CC=${CROSS_PREFIX}gcc
command -v "$CC" >/dev/null || { echo "$CC is needed for fresh-start (scripts/bootstrap.sh installs it)" >&2; exit 1; }

if [ "$KERNEL" = own ]; then
  : "${KERNEL_SCRIPT:?}"
  mkdir -p "$W/kernel"
  bash "$KERNEL_SCRIPT" "$OUT" "$W/kernel"
fi
mkdir -p "$W/tiny-out" "$W/tiny"
GUEST_INIT=$TINY_INIT DISK_SIZE=$DISK_SIZE bash "$TINY_RECIPE" "$W/tiny-out" "$W/tiny"
# The host's busybox: the guest's may be of another arch.
BB=$(command -v busybox)

phase packing "agent initramfs"
R=$W/root
mkdir -p "$R"
(cd "$R" && "$BB" cpio -i -d -m < "$W/tiny-out/initramfs.cpio" 2>/dev/null)
# The Debian kernel's modules are of no use to a kernel with everything built in.
[ "$KERNEL" = debian ] || rm -rf "$R/lib/modules" "$R/etc/solstice-modules"
# Every command over SSH starts in root's login shell: busybox sh starts in a third of bash's time
# under TCG (exec round trip 0.15 → 0.10 s). Steps still get bash as their default shell.
sed -i 's#^root:\(.*\):/bin/bash$#root:\1:/bin/sh#' "$R/etc/passwd"
grep -q '^root:.*:/bin/sh$' "$R/etc/passwd" || { echo "could not make /bin/sh root's login shell" >&2; exit 1; }
install -m 755 "$GUEST_INIT" "$R/etc/rc.boot"
# Static, so they need no library the initramfs lacks.
"$CC" -static -Os -o "$R/usr/sbin/fresh-start" "$FRESH_START_C"
"$CC" -static -Os -o "$R/usr/sbin/job-commands" "$JOB_COMMANDS_C"
"${CROSS_PREFIX}strip" "$R/usr/sbin/fresh-start" "$R/usr/sbin/job-commands"
(cd "$R" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) > "$OUT/initramfs.cpio"

if [ "$KERNEL" = own ]; then mv "$OUT/bzImage" "$OUT/vmlinuz"; else cp "$W/tiny-out/vmlinuz" "$OUT/vmlinuz"; fi
cp "$W/tiny-out/disk.qcow2" "$OUT/disk.qcow2"
