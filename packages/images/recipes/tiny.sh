#!/usr/bin/env bash
# Builds the "tiny" guest of one architecture: Debian's kernel for it plus an initramfs that is
# the whole system (busybox, dropbear, bash, sftp-server, git, GNU tar). Booted with -kernel/-initrd; the
# disk the backend attaches is an empty qcow2 that only carries the per-job overlay.
#
# Packages are fetched with `apt-get download` through an apt of the build's own, for the guest's
# architecture (debian-apt.sh), and unpacked with `dpkg-deb -x`: nothing is installed on the
# host, nothing of the guest's architecture is ever run on it (libraries are found by reading the
# ELF files, modules and the cpio are handled by the host's busybox), and neither root, loop
# devices, mount nor binfmt are needed.
#
# Usage: tiny.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   GUEST_INIT   path of the guest's /etc/rc.boot (tiny-init.sh)
#        DEBIAN_APT   path of debian-apt.sh; DEB_ARCH, SUITE, MIRROR, SECURITY_MIRROR: see there
#        KERNEL_META  the kernel meta-package (linux-image-cloud-amd64, linux-image-riscv64, ...)
#        MODULES      kernel modules the guest loads at boot, in order (built-in ones are skipped)
#        DISK_SIZE    size of the empty golden disk (e.g. 1G)
# Prints "::phase <name> <detail>" lines for progress.
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${GUEST_INIT:?}" "${DISK_SIZE:?}" "${DEBIAN_APT:?}" "${KERNEL_META:?}" "${MODULES:?}" "${DEB_ARCH:?}"
phase() { echo "::phase $*"; }
# The host's busybox (busybox-static, scripts/bootstrap.sh): the guest's may be of another arch.
BB=$(command -v busybox) || { echo "busybox is needed on the host (busybox-static)" >&2; exit 1; }
command -v readelf >/dev/null || { echo "readelf is needed on the host (binutils)" >&2; exit 1; }
case $DEB_ARCH in
  amd64) TRIPLET=x86_64-linux-gnu ;;
  arm64) TRIPLET=aarch64-linux-gnu ;;
  riscv64) TRIPLET=riscv64-linux-gnu ;;
  *) echo "no multiarch triplet known for $DEB_ARCH" >&2; exit 1 ;;
esac

# ---- 1. packages ------------------------------------------------------------------
phase downloading-packages "package lists for $DEB_ARCH ($SUITE)"
# shellcheck source=debian-apt.sh
. "$DEBIAN_APT"
debian_apt_setup "$W/apt"
# The meta-package moves with security updates; name the concrete kernel it points at.
KPKG=$(guest_apt_cache depends "$KERNEL_META" | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
[ -n "$KPKG" ] || { echo "$KERNEL_META has no concrete kernel for $DEB_ARCH" >&2; exit 1; }
# GNU tar: @actions/cache (inside actions/cache) runs `tar --posix -P --files-from`, which
# busybox's tar does not take; it compresses with gzip, busybox's applet.
USERLAND=(busybox-static dropbear-bin bash openssh-sftp-server git ca-certificates libstdc++6 tar)
# Everything these depend on, so the shared libraries below can be resolved from the
# .debs themselves. Virtual packages (<name>) cannot be downloaded and are skipped.
mapfile -t PKGS < <(guest_apt_cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${USERLAND[@]}" | grep -v -e '^ ' -e '^<' | sort -u)
mkdir -p "$W/debs" "$W/stage"
phase downloading-packages "$KPKG and ${#PKGS[@]} userland packages"
# apt warns that it downloads unsandboxed when run as root into a directory _apt cannot
# write; that is expected here.
(cd "$W/debs" && guest_apt download -q "$KPKG" "${PKGS[@]}" 2>&1 | grep -v 'unsandboxed' || true)
ls "$W"/debs/*.deb >/dev/null
phase unpacking "$(ls "$W"/debs | wc -l) packages"
# Two at a time: the kernel's package alone (every module, xz-compressed) takes ~10 s to unpack.
printf '%s\0' "$W"/debs/*.deb | xargs -0 -n 1 -P 2 sh -c 'dpkg-deb -x "$1" "$0"' "$W/stage"
S=$W/stage
MODDIR=
for d in "$S"/lib/modules/* "$S"/usr/lib/modules/*; do [ -d "$d" ] && MODDIR=$d && break; done
[ -n "$MODDIR" ] || { echo "$KPKG unpacked no /lib/modules" >&2; exit 1; }
KVER=${MODDIR##*/}

# staged PATH: the file a guest path names in the staged packages, following symbolic links
# inside the stage (an absolute link must not lead to the host's file of the same name), and
# trying /usr as well (Debian 13 ships /bin, /lib in /usr).
staged() {
  local p=${1#/} n=0
  [ -e "$S/$p" ] || [ -L "$S/$p" ] || p=usr/$p
  while [ -L "$S/$p" ]; do
    local t; t=$(readlink "$S/$p")
    case $t in /*) p=${t#/} ;; *) p=$(dirname "$p")/$t ;; esac
    n=$((n+1)); [ $n -lt 20 ] || { echo "symbolic link loop at $1" >&2; return 1; }
    [ -e "$S/$p" ] || [ -L "$S/$p" ] || p=usr/${p#usr/}
  done
  [ -e "$S/$p" ] || { echo "$1 is not in the staged packages" >&2; return 1; }
  echo "$S/$p"
}

# ---- 2. root tree -----------------------------------------------------------------
phase packing "initramfs tree"
R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib,etc/dropbear,etc/acpi/PWRF,proc,sys,dev,run,tmp,mnt/seed,root/.ssh,var/log,var/tmp}
# One library tree whatever the suite's layout: /lib is /usr/lib, as on a merged-/usr system.
ln -s usr/lib "$R/lib"
ln -s ../run "$R/var/run"
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 700 "$R/root" "$R/root/.ssh"

# copy PATH...: the staged file (or tree) at the same path in the guest.
copy() { for p in "$@"; do mkdir -p "$R/$(dirname "$p")"; cp -a "$(staged "$p")" "$R/$p"; done; }
copy bin/busybox usr/sbin/dropbear usr/bin/dropbearkey usr/bin/dropbearconvert bin/bash bin/tar \
  usr/lib/openssh/sftp-server usr/lib/git-core usr/share/git-core/templates
# Server-side and mail helpers a CI checkout never runs (~10 MB of initramfs, i.e. boot time).
rm -f "$R"/usr/lib/git-core/{git-daemon,git-http-backend,git-http-push,git-http-fetch,git-imap-send,scalar,git-shell}
# /usr/bin/git and git-core/git are the same binary.
ln -sf ../lib/git-core/git "$R/usr/bin/git"
# Debian's dropbear runs the SFTP subsystem from this compiled-in path.
ln -s openssh/sftp-server "$R/usr/lib/sftp-server"
ln -s bash "$R/bin/sh.bash"

# CA bundle for git over https (update-ca-certificates is a postinst we do not run).
mkdir -p "$R/etc/ssl/certs"
find "$S/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat > "$R/etc/ssl/certs/ca-certificates.crt"
# Debian's libcurl-gnutls has no compiled-in CA file (it asks p11-kit, which we leave out).
printf '[http]\n\tsslCAInfo = /etc/ssl/certs/ca-certificates.crt\n' > "$R/etc/gitconfig"

# Shared libraries: the NEEDED closure of every ELF we ship, read with readelf (which reads any
# architecture's ELF files) and resolved against the staged packages only, so the guest gets
# Debian's libraries for its architecture and never the host's. Each lands in
# /usr/lib/<triplet>, where the guest's loader looks; each program's interpreter at its own path.
mkdir -p "$R/usr/lib/$TRIPLET"
declare -A have=()
pending=()
# Ships library $1 (once) and queues it, so its own NEEDED entries follow; $2 says who wants it.
ship_lib() {
  [ -z "${have[$1]:-}" ] || return 0
  have[$1]=1
  local src
  src=$(staged "lib/$TRIPLET/$1" 2>/dev/null || staged "usr/lib/$TRIPLET/$1" 2>/dev/null) \
    || { echo "library $1 (needed by $2) is not in the staged packages" >&2; exit 1; }
  cp "$src" "$R/usr/lib/$TRIPLET/$1"
  pending+=("$R/usr/lib/$TRIPLET/$1")
}
# The C++ runtime and the libraries Node's official Linux build links (JavaScript actions carry
# that build into the guest): no ELF of the guest's own needs them, so they are named here.
for lib in libstdc++.so.6 libgcc_s.so.1 libm.so.6 libdl.so.2 libpthread.so.0; do ship_lib "$lib" "Node"; done
while IFS= read -r -d '' f; do readelf -h "$f" >/dev/null 2>&1 && pending+=("$f"); done \
  < <(find "$R" -type f -perm -u+x -print0)
while [ ${#pending[@]} -gt 0 ]; do
  f=${pending[-1]}
  unset 'pending[-1]'
  interp=$(readelf -l "$f" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
  if [ -n "$interp" ] && [ ! -e "$R$interp" ]; then
    mkdir -p "$R$(dirname "$interp")"
    cp "$(staged "$interp")" "$R$interp"
  fi
  for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
    ship_lib "$lib" "${f#"$R"}"
  done
done

# Kernel modules: MODULES and what they depend on (their `depends=` field), unless built into
# this kernel. Only those are read: a depmod over Debian 13's whole tree of .ko.xz files takes a
# minute. They are decompressed here, so the guest's busybox modprobe needs no xz.
MODS=$R/lib/modules/$KVER
declare -A MODPATH=()
while IFS= read -r -d '' f; do
  n=${f##*/}
  n=${n%%.ko*}
  MODPATH[${n//-/_}]=${f#"$MODDIR"/}
done < <(find "$MODDIR/kernel" -name '*.ko*' -print0)
unpack_ko() {
  case $1 in
    *.ko.xz) xz -dc "$MODDIR/$1" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$1" ;;
    *) cat "$MODDIR/$1" ;;
  esac
}
read -r -a WANTED <<< "$MODULES"
LOADABLE=()
for m in "${WANTED[@]}"; do
  grep -qE "/${m//[-_]/[-_]}\.ko$" "$MODDIR/modules.builtin" || LOADABLE+=("$m")
done
declare -A copied=()
queue=("${LOADABLE[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  m=${queue[-1]//-/_}
  unset 'queue[-1]'
  [ -z "${copied[$m]:-}" ] || continue
  copied[$m]=1
  ko=${MODPATH[$m]:-}
  [ -n "$ko" ] || { echo "kernel $KVER has no module $m" >&2; exit 1; }
  mkdir -p "$MODS/$(dirname "$ko")"
  unpack_ko "$ko" > "$MODS/${ko%.ko*}.ko"
  deps=$(tr '\0' '\n' < "$MODS/${ko%.ko*}.ko" | sed -n 's/^depends=//p' | head -n1)
  IFS=, read -r -a more <<< "$deps"
  queue+=("${more[@]}")
done
mkdir -p "$MODS"
"$BB" depmod -b "$R" "$KVER"
printf '%s\n' "${LOADABLE[@]}" > "$R/etc/solstice-modules"

# busybox applets wherever busybox says they live, unless a real binary is there already.
for p in $("$BB" --list-full); do
  mkdir -p "$R/$(dirname "$p")"
  [ -e "$R/$p" ] || ln -s /bin/busybox "$R/$p"
done
ln -s /bin/busybox "$R/init"

printf 'root:x:0:0:root:/root:/bin/bash\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$R/etc/shadow"   # no password: key login only
chmod 600 "$R/etc/shadow"
printf '/bin/sh\n/bin/bash\n' > "$R/etc/shells"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$R/etc/hosts"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$R/etc/nsswitch.conf"
cat > "$R/etc/profile" <<'PROFILE'
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=${HOME:-/root}
PROFILE
install -m 755 "$GUEST_INIT" "$R/etc/rc.boot"
cat > "$R/etc/inittab" <<'INITTAB'
::sysinit:/etc/rc.boot
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
INITTAB
# busybox acpid maps the power button (QMP system_powerdown) to CONFDIR/PWRF/00000080.
printf '#!/bin/sh\nexec /sbin/poweroff\n' > "$R/etc/acpi/PWRF/00000080"
chmod 755 "$R/etc/acpi/PWRF/00000080"

# ---- 3. output --------------------------------------------------------------------
phase packing "initramfs cpio"
# Uncompressed: under TCG, gunzip in the guest costs more than copying the bytes in.
(cd "$R" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) > "$OUT/initramfs.cpio"
# vmlinuz (x86 bzImage, arm64 Image) or vmlinux (riscv64's EFI-stub Image): what -kernel loads.
cp "$(ls "$S"/boot/vmlinu[xz]-"$KVER" | head -n1)" "$OUT/vmlinuz"
phase making-disk "empty $DISK_SIZE qcow2"
qemu-img create -q -f qcow2 "$OUT/disk.qcow2" "$DISK_SIZE"
printf '%s\n' "$KPKG" > "$OUT/kernel-package"
