#!/usr/bin/env bash
# Builds the "tiny" guest: the Debian cloud kernel plus an initramfs that is the whole
# system (busybox, dropbear, bash, sftp-server, git). Booted with -kernel/-initrd; the
# disk the backend attaches is an empty qcow2 that only carries the per-job overlay.
#
# Packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`: nothing is
# installed on the host, and neither root, loop devices nor mount are needed.
#
# Usage: tiny.sh OUT_DIR SCRATCH_DIR   (both exist; OUT_DIR is empty)
# Env:   GUEST_INIT  path of the guest's /etc/rc.boot (tiny-init.sh)
#        DISK_SIZE   size of the empty golden disk (e.g. 1G)
# Prints "::phase <name> <detail>" lines for progress.
set -euo pipefail
OUT=$(realpath "$1") W=$(realpath "$2")
: "${GUEST_INIT:?}" "${DISK_SIZE:?}"
phase() { echo "::phase $*"; }

# ---- 1. packages ------------------------------------------------------------------
phase downloading-packages "resolving the cloud kernel"
# The meta-package moves with security updates; name the concrete kernel it points at.
KPKG=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
[ -n "$KPKG" ] || { echo "linux-image-cloud-amd64 has no concrete kernel (run apt-get update?)" >&2; exit 1; }
USERLAND=(busybox-static dropbear-bin bash openssh-sftp-server git ca-certificates libstdc++6)
# Everything these depend on, so the shared libraries below can be resolved from the
# .debs themselves. Virtual packages (<name>) cannot be downloaded and are skipped.
mapfile -t PKGS < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${USERLAND[@]}" | grep -v -e '^ ' -e '^<' | sort -u)
mkdir -p "$W/debs" "$W/stage"
phase downloading-packages "$KPKG and ${#PKGS[@]} userland packages"
# apt warns that it downloads unsandboxed when run as root into a directory _apt cannot
# write; that is expected here.
(cd "$W/debs" && apt-get download -q "$KPKG" "${PKGS[@]}" 2>&1 | grep -v 'unsandboxed' || true)
ls "$W"/debs/*.deb >/dev/null
phase unpacking "$(ls "$W"/debs | wc -l) packages"
for deb in "$W"/debs/*.deb; do dpkg-deb -x "$deb" "$W/stage"; done
S=$W/stage
KVER=$(ls "$S/lib/modules")
BB=$S/bin/busybox

# ---- 2. root tree -----------------------------------------------------------------
phase packing "initramfs tree"
R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/dropbear,etc/acpi/PWRF,proc,sys,dev,run,tmp,mnt/seed,root/.ssh,var/log,var/tmp}
ln -s ../run "$R/var/run"
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 700 "$R/root" "$R/root/.ssh"

# copy PATH...: the same path in the guest as in the staged packages.
copy() { for p in "$@"; do mkdir -p "$R/$(dirname "$p")"; cp -a "$S/$p" "$R/$p"; done; }
copy bin/busybox usr/sbin/dropbear usr/bin/dropbearkey usr/bin/dropbearconvert bin/bash \
  usr/lib/openssh/sftp-server usr/bin/git usr/lib/git-core usr/share/git-core/templates
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

# Shared libraries of every ELF we ship, resolved with the staged loader against the
# staged libraries, so the guest gets Debian's libraries and never the host's.
LD=$S/lib64/ld-linux-x86-64.so.2
LIBPATH=$S/lib/x86_64-linux-gnu:$S/usr/lib/x86_64-linux-gnu
find "$R" -type f -perm -u+x | while read -r f; do
  # --verify is false for static and non-ELF files (--list would crash on static ones).
  "$LD" --verify "$f" >/dev/null 2>&1 || continue
  "$LD" --library-path "$LIBPATH" --list "$f" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  rel=${lib#"$S"/}
  [ "$rel" != "$lib" ] || { echo "library outside the staged packages: $lib" >&2; exit 1; }
  mkdir -p "$R/$(dirname "$rel")"
  cp -L "$lib" "$R/$rel"
done
mkdir -p "$R/lib64" && cp -L "$LD" "$R/lib64/"
# The C++ runtime and the libraries Node's official Linux build links (JavaScript actions carry
# that build into the guest); no ELF of the guest's own needs them, so they are named here.
for lib in usr/lib/x86_64-linux-gnu/libstdc++.so.6 lib/x86_64-linux-gnu/libgcc_s.so.1 \
  lib/x86_64-linux-gnu/libm.so.6 lib/x86_64-linux-gnu/libdl.so.2 lib/x86_64-linux-gnu/libpthread.so.0; do
  mkdir -p "$R/$(dirname "$lib")"
  cp -L "$S/$lib" "$R/$lib"
done

# Kernel modules: the modules.dep closure of what the guest loads in tiny-init.sh.
"$BB" depmod -b "$S" "$KVER"
for m in virtio_pci virtio_net virtio_blk virtio-rng isofs button evdev; do
  line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$S/lib/modules/$KVER/modules.dep") \
    || { echo "kernel $KVER has no module $m" >&2; exit 1; }
  echo "$line" | tr -d ':' | tr ' ' '\n'
done | sort -u | while read -r ko; do
  [ -n "$ko" ] || continue
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$ko")"
  cp "$S/lib/modules/$KVER/$ko" "$R/lib/modules/$KVER/$ko"
done
"$BB" depmod -b "$R" "$KVER"

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
cp "$S/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
phase making-disk "empty $DISK_SIZE qcow2"
qemu-img create -q -f qcow2 "$OUT/disk.qcow2" "$DISK_SIZE"
printf '%s\n' "$KPKG" > "$OUT/kernel-package"
