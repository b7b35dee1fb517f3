#!/bin/sh
# PID 1 (rdinit) of the guest that finishes a Debian root of another architecture at build time
# (debian-foreign.sh). The whole half-made root from `debootstrap --foreign` is this guest's
# initramfs, so it runs in RAM on Debian's own kernel for the arch, and no module is needed before
# the second stage has installed the kernel's modules and kmod. Then: the second stage, the
# security updates over QEMU's user network, our configuration (debian-configure.sh), the
# initramfs for the finished image, and the finished root written as a tar archive onto the raw
# virtio disk the host gave it. The host reads "::phase" lines and the last line from the console.
#
# Reads /solstice-build.env: SUITE, MIRROR, SECURITY_MIRROR, ROOT_UUID, APT_PACKAGES.
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
# debootstrap's first stage makes /proc a symlink to /proc when the build host looks like a
# container (/.dockerenv): inside this guest that is a loop, and nothing mounts on it.
if [ -L /proc ]; then rm /proc && mkdir /proc; fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
phase() { echo "::phase $*"; }

build() {
  # -x: the console then shows the command that failed (dash has no ERR trap); the host keeps the
  # console as console.log among a failed build's logs.
  set -eux
  . /solstice-build.env
  phase debootstrap "second stage in the guest"
  # The kernel's hook makes no initramfs while packages are installed: one is made at the end,
  # once, for the newest kernel (each costs minutes under emulation).
  export INITRD=No
  /debootstrap/debootstrap --second-stage || { tail -n 30 /debootstrap/debootstrap.log; return 1; }
  # The second stage unmounts /proc and /sys (ours too: it unmounts what it finds there) when it is
  # done; without /sys no network interface is found below.
  mountpoint -q /proc || mount -t proc proc /proc
  mountpoint -q /sys || mount -t sysfs sysfs /sys
  # The downloaded packages are installed: their space in RAM goes back to the root.
  apt-get clean
  mount -t devtmpfs devtmpfs /dev
  mkdir -p /dev/pts
  mount -t devpts devpts /dev/pts
  modprobe -a virtio_pci virtio_net virtio_blk

  phase configuring "network (QEMU user-net)"
  IF= tries=0
  while [ -z "$IF" ] && [ "$tries" -lt 100 ]; do
    for d in /sys/class/net/*; do
      if [ -e "$d" ] && [ "${d##*/}" != lo ]; then IF=${d##*/}; fi
    done
    if [ -z "$IF" ]; then sleep 0.1; fi
    tries=$((tries + 1))
  done
  if [ -z "$IF" ]; then echo "no network interface"; return 1; fi
  ip link set lo up
  ip link set "$IF" up
  ip addr add 10.0.2.15/24 dev "$IF"
  ip route add default via 10.0.2.2
  echo 'nameserver 10.0.2.3' > /etc/resolv.conf

  phase configuring "security updates"
  . /solstice-configure.sh
  # This guest runs the release's kernel, which the updates replace and debian_update purges; the
  # kernel's prerm refuses to remove the running kernel (linux-check-removal, which asks debconf
  # and takes "abort" unattended). Nothing boots this kernel again, so the check is answered here,
  # ahead of /usr/bin on dpkg's PATH, for as long as the updates run.
  printf '#!/bin/sh\nexit 0\n' > /usr/local/sbin/linux-check-removal
  chmod 755 /usr/local/sbin/linux-check-removal
  # shellcheck disable=SC2086 # APT_PACKAGES is a list of package names.
  debian_update / /var/log/solstice-apt.log $APT_PACKAGES
  rm -f /usr/local/sbin/linux-check-removal
  phase configuring "systemd, ssh, cloud-init"
  debian_configure / "$ROOT_UUID"
  KVER=$(ls /lib/modules | sort -V | tail -n1)
  phase configuring "initramfs for $KVER"
  update-initramfs -c -k "$KVER" > /dev/null

  phase packing "root file system onto the output disk"
  rm -f /solstice-build.env /solstice-configure.sh /var/log/solstice-apt.log
  DISK=/dev/vda
  if [ ! -b "$DISK" ]; then echo "no output disk $DISK"; return 1; fi
  # GNU tar exits 1 when a file changed while it was read: here the mount points (it said
  # "./sys: file changed as we read it"), which it keeps as the empty directories the image needs.
  # 2 and above are its errors.
  tar -C / --one-file-system --numeric-owner --xattrs --xattrs-include='*' \
    --exclude=./solstice-build -cf "$DISK" . || [ "$?" = 1 ]
  sync
}

# What the console shows after a failure, whatever step it was in.
diagnose() {
  echo "---- network"; ip -o link; ip -o addr; ip route
  echo "---- memory and root"; free -m; df -m /
  echo "---- kernel messages (last 60)"; dmesg | tail -n 60
}

# Not `if (build)`: errexit is off inside a condition.
(build)
status=$?
if [ "$status" = 0 ]; then echo "::stage2 ok"; else echo "::stage2 failed ($status)"; diagnose 2>&1; fi
sync
# No init system to shut down: power off through the kernel's magic SysRq.
echo o > /proc/sysrq-trigger
sleep 60
