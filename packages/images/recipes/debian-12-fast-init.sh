#!/bin/sh
# /init of the debian-12-fast initramfs: the least Debian's kernel needs to reach its root on
# microvm — the virtio-mmio bus and the virtio disk (ext4 is built into Debian's kernel) — then
# systemd. No udev, no fsck, no search for the root: it is /dev/vda, the whole disk. Everything
# else (network, console port, rng) udev loads from the root's /lib/modules once systemd runs.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules-order); do
  insmod "/lib/modules/$m.ko" || echo "initramfs: insmod $m failed" > /dev/console
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/vda /newroot; then
  # Power off at once: the host sees QEMU exit with this console, instead of waiting out its deadline.
  echo "initramfs: cannot mount /dev/vda as the root" > /dev/console
  echo o > /proc/sysrq-trigger
fi
umount /proc /sys
mount -o move /dev /newroot/dev
exec switch_root /newroot /sbin/init
