#!/usr/bin/env bash
# Builds the tiny-fast guest's kernel from Debian's kernel source (linux-source-6.1) with every
# driver the guest uses built in (guest-kernel.config), and writes OUT_DIR/vmlinux (the stripped
# ELF with its PVH entry, for QEMU's -kernel) and OUT_DIR/bzImage. The build takes about 5 min on
# 2 cores, so finished kernels are kept in KERNEL_CACHE under a key of the source package's
# version, the config and this script: rebuilding the image (a new init script, say) reuses it.
#
# Usage: guest-kernel.sh OUT_DIR SCRATCH_DIR
# Env:   KERNEL_CONFIG  path of guest-kernel.config    KERNEL_CACHE  directory for built kernels
#        KERNEL_SOURCE_PACKAGE  Debian source package (linux-source-6.1)
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${KERNEL_CONFIG:?}" "${KERNEL_CACHE:?}" "${KERNEL_SOURCE_PACKAGE:?}"
phase() { echo "::phase $*"; }
for tool in make gcc flex bison bc lz4 objcopy; do
  command -v "$tool" >/dev/null || { echo "$tool is needed to build the guest kernel (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done
[ -e /usr/include/libelf.h ] || { echo "libelf-dev is needed to build the guest kernel (scripts/bootstrap.sh installs it)" >&2; exit 1; }

VERSION=$(apt-cache policy "$KERNEL_SOURCE_PACKAGE" | sed -n 's/^ *Candidate: *//p')
case "$VERSION" in ''|'(none)') echo "no candidate for $KERNEL_SOURCE_PACKAGE (run apt-get update?)" >&2; exit 1 ;; esac
KEY=$( { echo "$KERNEL_SOURCE_PACKAGE $VERSION"; cat "$KERNEL_CONFIG" "$0"; } | sha256sum | cut -c1-16)
CACHED=$KERNEL_CACHE/$KEY
if [ -s "$CACHED/vmlinux" ] && [ -s "$CACHED/bzImage" ]; then
  echo "guest kernel $KERNEL_SOURCE_PACKAGE $VERSION from the cache ($CACHED)"
  cp "$CACHED/vmlinux" "$CACHED/bzImage" "$OUT/"
  echo "$KERNEL_SOURCE_PACKAGE $VERSION (built in, key $KEY)" > "$OUT/kernel-package"
  exit 0
fi

phase fetching "$KERNEL_SOURCE_PACKAGE $VERSION"
mkdir -p "$W/deb" "$W/src"
# apt warns that it downloads unsandboxed when run as root into a directory _apt cannot read.
(cd "$W/deb" && apt-get download -q "$KERNEL_SOURCE_PACKAGE=$VERSION" 2>&1 | grep -v unsandboxed || true)
DEB=$(ls "$W"/deb/*.deb)
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$W/deb" --wildcards '*/linux-source-*.tar.xz'
tar -xf "$W"/deb/usr/src/linux-source-*.tar.xz -C "$W/src"
rm -rf "$W/deb"
SRC=$(ls -d "$W"/src/linux-source-*)

phase configuring "tinyconfig + kvm_guest + guest-kernel.config"
# ARCH=x86_64 on every make: without it tinyconfig gives a 32-bit kernel.
make -C "$SRC" -s ARCH=x86_64 tinyconfig
(cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$SRC" .config kernel/configs/kvm_guest.config "$KERNEL_CONFIG" >/dev/null)
make -C "$SRC" -s ARCH=x86_64 olddefconfig
# merge_config's -m skips the check that every option stuck; a requested option the kernel
# dropped (a missing dependency) would otherwise show up only as a guest that cannot boot.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$KERNEL_CONFIG" | while read -r opt; do
  grep -qx "$opt" "$SRC/.config" || echo "${opt%=y}"
done)
[ -z "$missing" ] || { echo "the kernel config dropped: $missing" >&2; exit 1; }

phase compiling "kernel on $(nproc) cores (about 5 min on 2)"
make -C "$SRC" -s ARCH=x86_64 -j"$(nproc)" bzImage
objcopy -S "$SRC/vmlinux" "$W/vmlinux"
readelf -n "$W/vmlinux" | grep -qE '^ *Xen .*\(0x00000012\)' \
  || { echo "the built kernel has no PVH entry (CONFIG_PVH)" >&2; exit 1; }

mkdir -p "$KERNEL_CACHE"
TMP=$(mktemp -d "$KERNEL_CACHE/.building-XXXXXX")
cp "$W/vmlinux" "$SRC/arch/x86/boot/bzImage" "$TMP/"
rm -rf "$CACHED" && mv "$TMP" "$CACHED"
cp "$CACHED/vmlinux" "$CACHED/bzImage" "$OUT/"
echo "$KERNEL_SOURCE_PACKAGE $VERSION (built in, key $KEY)" > "$OUT/kernel-package"
rm -rf "$SRC"
