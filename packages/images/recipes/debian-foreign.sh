#!/usr/bin/env bash
# Builds a Debian guest of another architecture than the host's (debian-12-arm64, debian-13-riscv64),
# with nothing of the guest's architecture run on the host, hence no binfmt and no qemu-user:
#  1. `debootstrap --foreign --arch=DEB_ARCH` on the host downloads the packages and unpacks the
#     essential ones (it runs no maintainer script, so it needs no emulation);
#  2. that half-made root, with debian-foreign-stage2.sh as its /solstice-build, becomes the
#     initramfs of a guest booted under QEMU (TCG here, KVM on a host of the arch is not used for
#     builds) on Debian's kernel for the arch, taken from the downloaded kernel package; the guest
#     runs the second stage, installs the security updates, configures the image, makes its
#     initramfs and writes the finished root as a tar archive onto a raw disk;
#  3. the host unpacks that archive and writes it into an ext4 disk with `mkfs.ext4 -d` (no loop
#     device, no mount), and keeps the kernel and initramfs beside it for a direct kernel boot:
#     the backend boots these guests with -kernel/-initrd, as their QEMU machine has no firmware
#     of ours (docs/architectures.md).
#
# Usage: debian-foreign.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   STAGE2 (debian-foreign-stage2.sh), DEBIAN_CONFIGURE (debian-configure.sh),
#        DEB_ARCH, SUITE, MIRROR, SECURITY_MIRROR, DEB_CACHE (debootstrap's .deb cache),
#        PACKAGES (comma-separated, for --include; the kernel among them), DISK_SIZE_MIB,
#        QEMU_SYSTEM, QEMU_MACHINE, QEMU_CPU, CONSOLE (the arch's emulator, machine, TCG CPU and
#        serial console), BUILD_CPUS, BUILD_MEMORY_MIB (the build guest; its root lives in RAM);
#        optional: QEMU_BIOS (-bios: riscv64's OpenSBI), APT_PACKAGES (space-separated, installed
#        by apt after the updates: what debootstrap's --include would not resolve)
# Prints "::phase <name> <detail>" lines for progress (the guest's among them).
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${STAGE2:?}" "${DEBIAN_CONFIGURE:?}" "${DEB_ARCH:?}" "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}"
: "${DEB_CACHE:?}" "${PACKAGES:?}" "${DISK_SIZE_MIB:?}" "${QEMU_SYSTEM:?}" "${QEMU_MACHINE:?}" "${QEMU_CPU:?}"
: "${CONSOLE:?}" "${BUILD_CPUS:?}" "${BUILD_MEMORY_MIB:?}"
phase() { echo "::phase $*"; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
BB=$(command -v busybox) || { echo "busybox is needed on the host (busybox-static)" >&2; exit 1; }
command -v "$QEMU_SYSTEM" >/dev/null || { echo "$QEMU_SYSTEM is needed on the host" >&2; exit 1; }
R=$W/rootfs

# ---- 1. first stage on the host --------------------------------------------------------
phase debootstrap "$SUITE $DEB_ARCH minbase, first stage"
mkdir -p "$DEB_CACHE"
debootstrap --foreign --arch="$DEB_ARCH" --variant=minbase --cache-dir="$DEB_CACHE" \
  --include="$PACKAGES" "$SUITE" "$R" "$MIRROR" \
  > "$W/debootstrap.log" 2>&1 || { tail -n 30 "$W/debootstrap.log" >&2; exit 1; }
# The kernel the build guest boots: the one the second stage installs, so its modules match.
KDEB=$(ls "$R"/var/cache/apt/archives/linux-image-[0-9]*.deb | head -n1)
mkdir -p "$W/kernel"
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$W/kernel" ./boot
BUILD_KERNEL=$(ls "$W"/kernel/boot/vmlinu[xz]-* | head -n1)

# ---- 2. second stage in the guest ------------------------------------------------------
phase packing "the half-made root as the build guest's initramfs"
install -m 755 "$STAGE2" "$R/solstice-build"
install -m 644 "$DEBIAN_CONFIGURE" "$R/solstice-configure.sh"
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
printf "SUITE=%s\nMIRROR=%s\nSECURITY_MIRROR=%s\nROOT_UUID=%s\nAPT_PACKAGES='%s'\n" \
  "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$ROOT_UUID" "${APT_PACKAGES:-}" > "$R/solstice-build.env"
(cd "$R" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc 2>/dev/null) > "$W/stage1.cpio"
rm -rf "$R"
truncate -s "${DISK_SIZE_MIB}M" "$W/out.tar"
phase debootstrap "booting the $DEB_ARCH build guest (emulated: minutes)"
# The console carries the guest's ::phase lines; CRs dropped so they parse as the host's own.
"$QEMU_SYSTEM" -nodefaults -no-user-config -nographic -monitor none -serial stdio \
  -machine "$QEMU_MACHINE" ${QEMU_BIOS:+-bios "$QEMU_BIOS"} -accel tcg -cpu "$QEMU_CPU" -smp "$BUILD_CPUS" -m "$BUILD_MEMORY_MIB" \
  -kernel "$BUILD_KERNEL" -initrd "$W/stage1.cpio" \
  -append "console=$CONSOLE rdinit=/solstice-build quiet panic=-1" -no-reboot \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= -device virtio-rng-pci \
  -drive "file=$W/out.tar,if=none,id=out,format=raw" -device virtio-blk-pci,drive=out \
  < /dev/null 2>&1 | sed -u 's/\r$//' | tee "$W/console.log"
rm -f "$W/stage1.cpio"
grep -qx '::stage2 ok' "$W/console.log" || { echo "the build guest did not finish its stage (console above)" >&2; exit 1; }

# ---- 3. the disk and the kernel --------------------------------------------------------
phase making-disk "root filesystem ($DISK_SIZE_MIB MiB ext4)"
R=$W/final
mkdir -p "$R"
tar -x -C "$R" --numeric-owner --xattrs --xattrs-include='*' -f "$W/out.tar"
rm -f "$W/out.tar"
KVER=$(ls "$R/lib/modules" | sort -V | tail -n1)
cp "$(ls "$R"/boot/vmlinu[xz]-"$KVER" | head -n1)" "$OUT/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$OUT/initrd.img"
mkfs.ext4 -q -F -L root -U "$ROOT_UUID" -d "$R" "$W/root.img" "${DISK_SIZE_MIB}M"
qemu-img convert -O qcow2 "$W/root.img" "$OUT/disk.qcow2"
printf '%s\n' "$KVER" > "$OUT/kernel-version"
