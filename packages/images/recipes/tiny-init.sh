#!/bin/sh
# /etc/rc.boot of the tiny guest: busybox init runs it once (sysinit). Every line is boot
# time under TCG, so it does the minimum: modules, static network, NoCloud seed, dropbear.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
say() { read -r up _ < /proc/uptime; echo "solstice-guest[$up]: $*" > /dev/console; }

# The build's list for this architecture and kernel (tiny.sh MODULES less the built-in ones):
# virtio only, no ata/sr probing (the seed is a virtio disk), which keeps module bring-up at
# ~0.2 s under TCG; on x86, button+evdev let acpid see QMP system_powerdown.
while read -r m; do
  modprobe "$m" 2>/dev/null || say "modprobe $m failed"
done < /etc/solstice-modules
acpid -c /etc/acpi -l /dev/null 2>/dev/null || say "acpid did not start"

# QEMU user-net always hands out 10.0.2.15 with gateway .2 and DNS .3; setting it
# statically saves the DHCP round trip.
ip link set lo up
IF= i=0
while [ -z "$IF" ] && [ $i -lt 250 ]; do
  for d in /sys/class/net/*; do n=${d##*/}; [ "$n" != lo ] && [ -e "$d" ] && IF=$n && break; done
  [ -n "$IF" ] || { sleep 0.02; i=$((i+1)); }
done
if [ -n "$IF" ]; then
  ip link set "$IF" up
  ip addr add 10.0.2.15/24 dev "$IF"
  ip route add default via 10.0.2.2 dev "$IF"
else
  say "no network interface found"
fi
echo 'nameserver 10.0.2.3' > /etc/resolv.conf

# NoCloud seed: the block device whose filesystem label is "cidata".
SEED= i=0
while [ -z "$SEED" ] && [ $i -lt 250 ]; do
  SEED=$(findfs LABEL=cidata 2>/dev/null) || SEED=
  [ -n "$SEED" ] || { sleep 0.02; i=$((i+1)); }
done
umask 077
: > /root/.ssh/authorized_keys
if [ -n "$SEED" ] && mount -t iso9660 -o ro "$SEED" /mnt/seed 2>/dev/null; then
  # ssh_authorized_keys entries: one key per line, as a YAML list item or quoted string.
  sed -n 's/^[[:space:]-]*["'"'"']\{0,1\}\(\(ssh\|ecdsa\|sk\)-[a-z0-9@.-]* [A-Za-z0-9+/=]*\).*/\1/p' \
    /mnt/seed/user-data > /root/.ssh/authorized_keys 2>/dev/null
  # ssh_keys.ed25519_private: the OpenSSH PEM block (a YAML block scalar), indentation removed.
  sed -n '/BEGIN OPENSSH PRIVATE KEY/,/END OPENSSH PRIVATE KEY/s/^[[:space:]]*//p' \
    /mnt/seed/user-data > /tmp/seed-hostkey 2>/dev/null
  if [ -s /tmp/seed-hostkey ]; then
    dropbearconvert openssh dropbear /tmp/seed-hostkey /etc/dropbear/dropbear_ed25519_host_key \
      >/dev/null 2>&1 || say "could not convert the seed's ed25519 host key"
  fi
  rm -f /tmp/seed-hostkey
  H=$(sed -n 's/^local-hostname:[[:space:]]*//p' /mnt/seed/meta-data 2>/dev/null | tr -d "\"' ")
  [ -n "$H" ] && hostname "$H" && echo "127.0.1.1 $H" >> /etc/hosts
  umount /mnt/seed
  say "seed $SEED: $(wc -l < /root/.ssh/authorized_keys) authorized key(s)"
else
  say "no cidata seed found: no authorized keys"
fi
umask 022

# -s: no password logins. Only the seed's pinned host key when there is one; otherwise
# -R makes a random one so the guest stays reachable for debugging. -W: dropbear's default 24 KB
# receive window makes every 24 KB sent into the guest wait for a round trip, which under TCG
# holds uploads (an action's tree, the Node runtime) to ~0.5 MB/s.
if [ -s /etc/dropbear/dropbear_ed25519_host_key ]; then
  dropbear -r /etc/dropbear/dropbear_ed25519_host_key -s -p 22 -W 2097152 || say "dropbear failed"
else
  dropbear -R -s -p 22 -W 2097152 || say "dropbear failed"
fi
say "ssh ready"
