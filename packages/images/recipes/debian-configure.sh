# Sourced by the Debian recipes: the security updates and the guest configuration every Debian
# image of ours carries. Run on the build host against the unpacked root (debian-12.sh,
# debian-12-fast.sh) or inside the guest being built with ROOT=/ (debian-foreign-stage2.sh, so
# POSIX sh): `chroot ROOT systemctl` edits unit links without a running systemd either way.
#
# debian_update and debian_common serve every image; debian_configure is what the cloud-init
# images (debian-12, debian-12-arm64) add: networkd's DHCP, OpenSSH and cloud-init's settings.
# debian-12-fast has its own (key agent, dropbear, no cloud-init).

# debian_update ROOT LOG [PACKAGE...]: the release's point and security updates, with ROOT's /proc
# mounted, then PACKAGE... (no recommends) from the updated release.
# debootstrap only reads the release suite; a guest that runs untrusted jobs on the internet gets
# the security and point-release updates too (this also moves the kernel). Only the newest kernel
# is kept: the image carries exactly one. Needs SUITE, MIRROR, SECURITY_MIRROR.
debian_update() {
  local R=$1 log=$2
  shift 2
  cat > "$R/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  # No service may start while the image is being built.
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
  chmod 755 "$R/usr/sbin/policy-rc.d"
  chroot "$R" apt-get -q update > "$log" 2>&1 || { tail -n 30 "$log" >&2; return 1; }
  # No recommends: the new kernel would pull in apparmor, whose unit alone cost ~18 s of boot.
  DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y --no-install-recommends \
    -o Dpkg::Options::=--force-confold dist-upgrade \
    >> "$log" 2>&1 || { tail -n 30 "$log" >&2; return 1; }
  if [ $# -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y --no-install-recommends install "$@" \
      >> "$log" 2>&1 || { tail -n 30 "$log" >&2; return 1; }
  fi
  local old
  for old in $(ls "$R/lib/modules" | sort -V | head -n -1); do
    DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -q -y purge "linux-image-$old" >> "$log" 2>&1
  done
  chroot "$R" apt-get clean
  rm -f "$R/usr/sbin/policy-rc.d"
}

# debian_common ROOT: what every Debian guest of ours is, however it boots: named `debian`, QEMU
# user-net's resolver, an empty machine-id (each VM makes its own), and no background work racing
# the job.
debian_common() {
  local R=$1
  echo debian > "$R/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 debian\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
  # QEMU user-net's resolver: without systemd-resolved nothing writes resolv.conf from DHCP.
  echo 'nameserver 10.0.2.3' > "$R/etc/resolv.conf"
  : > "$R/etc/machine-id"
  rm -f "$R/var/lib/dbus/machine-id"
  # Nothing in a one-job VM should race the job for dpkg locks, disk or CPU.
  debian_mask "$R" apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer man-db.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer systemd-firstboot.service
}

# debian_mask ROOT UNIT...: what `systemctl mask` does, without a systemd to ask.
debian_mask() {
  local R=$1 unit
  shift
  mkdir -p "$R/etc/systemd/system"
  for unit; do ln -sf /dev/null "$R/etc/systemd/system/$unit"; done
}

# debian_slim ROOT: what a built image does not need to carry (package lists, docs, logs of the build).
debian_slim() {
  local R=$1
  rm -rf "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/var/log/*.log \
    "$R"/var/cache/debconf/*-old
}

# debian_configure ROOT ROOT_UUID: the cloud-init images' own part.
debian_configure() {
  local R=$1 uuid=$2
  debian_common "$R"
  printf 'UUID=%s / ext4 defaults,noatime,errors=remount-ro 0 1\n' "$uuid" > "$R/etc/fstab"
  # DHCP with systemd-networkd (part of systemd); cloud-init's network rendering is off.
  cat > "$R/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
IPv6AcceptRA=no
NET
  chroot "$R" systemctl enable -q systemd-networkd.service
  # Every VM gets its own (pinned, from the seed) SSH host key.
  rm -f "$R"/etc/ssh/ssh_host_*
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
  debian_slim "$R"
  rm -rf "$R"/var/lib/cloud/*
}
