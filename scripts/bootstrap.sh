#!/usr/bin/env bash
# Sets up a bare Debian machine for Solstice CI: the Debian packages the VM backend and the
# image builders use, pnpm through corepack, and the workspace's npm dependencies.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Host tools: QEMU and qemu-img (VMs; qemu-system-arm and qemu-system-misc run the aarch64 and
# riscv64 guests, OpenSBI for riscv64 comes with qemu-system-data), pasta (guest network
# isolation), genisoimage (NoCloud seeds), debootstrap/busybox-static/mtools/syslinux/fdisk/dosfstools (local guest images),
# zstd/xz (compressed cloud images), lz4 + binutils (tiny-fast's uncompressed PVH kernel),
# gcc + libc6-dev (tiny-fast's static fresh-start helper; gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross build it for tiny-arm64-fast), make/flex/bison/bc/libelf-dev/libssl-dev
# (tiny-fast's kernel, built from Debian's linux-source package), git (local checkout).
packages=(qemu-system-x86 qemu-system-arm qemu-system-misc qemu-utils passt genisoimage debootstrap busybox-static dosfstools mtools
  syslinux syslinux-common fdisk e2fsprogs zstd xz-utils lz4 debian-archive-keyring
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils gcc libc6-dev make flex bison bc
  libelf-dev libssl-dev git ca-certificates util-linux iproute2 procps)
# shellcheck source=lib/debian-packages.sh
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/lib/debian-packages.sh"
install_debian_packages bootstrap "${packages[@]}"
# The image builders fetch guest packages with `apt-get download`, which needs package lists.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -qq
fi

# Older corepack releases cannot verify the signatures of current pnpm releases.
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
if ! corepack pnpm --version >/dev/null 2>&1; then
  echo "bootstrap: updating corepack (this one cannot fetch the pinned pnpm)"
  npm install -g --silent corepack@latest
fi
corepack pnpm install --frozen-lockfile --reporter=silent
echo "bootstrap: ready (node $(node --version), pnpm $(corepack pnpm --version))"
