#!/usr/bin/env bash
# Builds "tiny-fast": the tiny guest laid out for the fast boot paths (BOOT-SPEED.md A, B, F).
# - The tiny recipe itself builds the system (so both guests carry the same userland).
# - virtio_mmio (microvm has no PCI) and virtio_console (the key agent's port) join its modules.
# - /etc/rc.boot is the agent init: keys arrive over virtio-serial after boot, never from a seed,
#   which is what lets one booted-and-idle guest be saved once and restored for every job.
# - rngseed, a static helper, forces the guest's CRNG to reseed after a restore.
# - The kernel is also extracted to its uncompressed ELF (vmlinux) when it has a PVH entry, so
#   QEMU can enter it directly and skip the in-guest decompressor.
# The initramfs stays an uncompressed cpio: under TCG copying is cheaper than gunzip.
#
# Usage: tiny-fast.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   TINY_RECIPE  path of tiny.sh       TINY_INIT  path of tiny-init.sh (tiny.sh's GUEST_INIT)
#        GUEST_INIT   path of the agent init (tiny-fast-init.sh)
#        RNGSEED_C    path of rngseed.c     DISK_SIZE  size of the empty golden disk
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${TINY_RECIPE:?}" "${TINY_INIT:?}" "${GUEST_INIT:?}" "${RNGSEED_C:?}" "${DISK_SIZE:?}"
phase() { echo "::phase $*"; }
command -v lz4 >/dev/null || { echo "lz4 is needed to extract the kernel (scripts/bootstrap.sh installs it)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "gcc is needed for rngseed (scripts/bootstrap.sh installs it)" >&2; exit 1; }

mkdir -p "$W/tiny-out" "$W/tiny"
GUEST_INIT=$TINY_INIT DISK_SIZE=$DISK_SIZE bash "$TINY_RECIPE" "$W/tiny-out" "$W/tiny"
S=$W/tiny/stage
KVER=$(ls "$S/lib/modules")
BB=$S/bin/busybox

phase packing "agent initramfs"
R=$W/root
mkdir -p "$R"
(cd "$R" && "$BB" cpio -i -d -m < "$W/tiny-out/initramfs.cpio" 2>/dev/null)
for m in virtio_mmio virtio_console; do
  line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$S/lib/modules/$KVER/modules.dep") \
    || { echo "kernel $KVER has no module $m" >&2; exit 1; }
  echo "$line" | tr -d ':' | tr ' ' '\n'
done | sort -u | while read -r ko; do
  [ -n "$ko" ] || continue
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$ko")"
  cp "$S/lib/modules/$KVER/$ko" "$R/lib/modules/$KVER/$ko"
done
"$BB" depmod -b "$R" "$KVER"
install -m 755 "$GUEST_INIT" "$R/etc/rc.boot"
# Static, so it needs no library the initramfs lacks.
gcc -static -Os -o "$R/usr/sbin/rngseed" "$RNGSEED_C"
strip "$R/usr/sbin/rngseed"
(cd "$R" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) > "$OUT/initramfs.cpio"

phase packing "kernel"
cp "$W/tiny-out/vmlinuz" "$OUT/vmlinuz"
# The compressed kernel is an LZ4 legacy frame (magic 02 21 4c 18) after the setup code: try
# each occurrence until one decompresses to an ELF (lz4 complains about the trailing bytes).
for off in $(LC_ALL=C grep -aboP '\x02\x21\x4c\x18' "$OUT/vmlinuz" | cut -d: -f1); do
  tail -c +$((off + 1)) "$OUT/vmlinuz" | lz4 -dc > "$W/vmlinux" 2>/dev/null || true
  readelf -h "$W/vmlinux" >/dev/null 2>&1 && break
  rm -f "$W/vmlinux"
done
# XEN_ELFNOTE_PHYS32_ENTRY (0x12): QEMU's -kernel takes the PVH path only when it is there.
if [ -s "$W/vmlinux" ] && readelf -n "$W/vmlinux" | grep -qE '^ *Xen .*\(0x00000012\)'; then
  mv "$W/vmlinux" "$OUT/vmlinux"
else
  echo "kernel $KVER has no PVH entry: tiny-fast boots the bzImage" >&2
fi
cp "$W/tiny-out/disk.qcow2" "$OUT/disk.qcow2"
cp "$W/tiny-out/kernel-package" "$OUT/kernel-package"
