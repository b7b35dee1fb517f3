#!/bin/sh
# /etc/rc.boot of the tiny-fast guest: static network, then the key agent. The guest
# gets its keys after boot over the virtio-serial port "ci.agent", so a booted-and-idle guest can
# be saved once and restored for every job (each restore then sends its own keys).
#
# Agent protocol, host to guest, one item per line:
#   TIME <epoch seconds>      the clock to set (a restored guest has the template's)
#   RESEED <hex>              host entropy to credit, with a forced CRNG reseed (required)
#   NAME <hostname>
#   AUTH <ssh public key>     one line of authorized_keys
#   HOSTKEY_DB <\ooo…>        the ed25519 host key in dropbear's format, as printf octal escapes
#   SCRUB                     (a template being saved, before any other item) zero the free
#                             memory, then print "scrubbed" on the console
#   SESSION                   (before GO) serve the job's SSH session on this port too
#                             (decision 0010): after GO the port carries SSH, and the guest's
#                             answer is the SSH server's identification line instead of READY
#   COMMANDS                  (before GO) serve the job's commands on this port instead
#                             (decision 0010, option 2): after GO the port carries job-commands'
#                             frames, and the guest's answer is its greeting line
#                             "SOLSTICE-COMMANDS 1" instead of READY
#   GO                        start dropbear through fresh-start (clock, entropy, reseed, then
#                             dropbear, in one process); the guest answers READY once it listens
#                             on port 22 (or FAILED <why>); with SESSION, `dropbear -i` speaks on
#                             this port at once and the listener on port 22 (debug access, later
#                             sessions) starts beside it at the lowest priority
# Every process started here costs 10-40 ms under TCG, right after a restore more: the items
# that can be done with shell builtins are.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
say() { read -r up _ < /proc/uptime; echo "solstice-guest[$up]: $*" > /dev/console; }

# Our own kernel has every driver built in (guest-kernel.config): nothing to load. Debian's kernel
# (guests of other architectures) loads the build's list, virtio_console (the agent's port) included.
if [ -f /etc/solstice-modules ]; then
  while read -r m; do modprobe "$m" 2>/dev/null || say "modprobe $m failed"; done < /etc/solstice-modules
fi
acpid -c /etc/acpi -l /dev/null 2>/dev/null || say "acpid did not start"

# QEMU user-net's fixed plan: 10.0.2.15, gateway .2, DNS .3 (no DHCP round trip).
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

PORT= i=0
while [ -z "$PORT" ] && [ $i -lt 500 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = ci.agent ] && PORT=/dev/${p##*/}
  done
  [ -n "$PORT" ] || { sleep 0.02; i=$((i+1)); }
done
if [ -z "$PORT" ]; then
  # Without the port no keys can come: no SSH at all, rather than SSH with keys nobody pinned.
  say "no ci.agent port: not starting ssh"
  exit 0
fi

umask 077
: > /root/.ssh/authorized_keys
rm -f /etc/dropbear/dropbear_ed25519_host_key
say "agent waiting on $PORT"
# read() on a virtio-serial port returns end-of-file while no host process holds the other end:
# always in a template being saved, and right after a restore until the host connects. So an
# end-of-file is retried every 10 ms on the same descriptor until GO has been read; nothing
# starts before that. The port is never closed meanwhile: Linux drops a port's unread data when
# it is closed, which would lose items the host sent in that moment.
exec 3<>"$PORT"
GO= FAILED= CLOCK=0 SEED= SESSION= COMMANDS=
while [ -z "$GO" ]; do
  if ! read -r cmd arg <&3; then
    sleep 0.01
    continue
  fi
  case "$cmd" in
    TIME) CLOCK=$arg ;;
    RESEED) SEED=$arg ;;
    NAME) echo "$arg" > /proc/sys/kernel/hostname && echo "127.0.1.1 $arg" >> /etc/hosts ;;
    HOSTKEY_DB) printf "$arg" > /etc/dropbear/dropbear_ed25519_host_key || FAILED="${FAILED}hostkey " ;;
    AUTH) echo "$arg" >> /root/.ssh/authorized_keys ;;
    SESSION) SESSION=1 ;;
    COMMANDS) COMMANDS=1 ;;
    SCRUB)
      # Freed memory keeps what it held (the unpacked initramfs's 33 MB, for one): filling the
      # free pages with zeros once lets the saved state skip them (QEMU stores a zero page as a
      # flag), so every restore loads far less. 64 MiB stay free so nothing runs out.
      free_kb=$(sed -n 's/^MemFree: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
      fill_mb=$(( (${free_kb:-0} - 65536) / 1024 ))
      if [ "$fill_mb" -gt 0 ] && mkdir -p /run/scrub && mount -t tmpfs -o size=${fill_mb}m scrub /run/scrub; then
        dd if=/dev/zero of=/run/scrub/zero bs=1M count=$fill_mb 2>/dev/null
        rm -f /run/scrub/zero
        umount /run/scrub
      fi
      say "scrubbed" ;;
    GO) GO=1 ;;
    *) say "agent: unknown item $cmd" ;;
  esac
done
umask 022
[ -s /etc/dropbear/dropbear_ed25519_host_key ] || FAILED="${FAILED}no-hostkey "
[ -s /root/.ssh/authorized_keys ] || FAILED="${FAILED}no-auth "
[ -n "$SEED" ] || FAILED="${FAILED}no-reseed "
if [ -n "$FAILED" ]; then
  # Never a random host key, never a guest whose CRNG may be a clone's: the host gives up on it.
  say "agent: not starting ssh: $FAILED"
  echo "FAILED $FAILED" >&3
  exit 0
fi
# -W: a 2 MB receive window, as in tiny-init.sh (uploads into the guest are round-trip bound without).
KEY=/etc/dropbear/dropbear_ed25519_host_key
if [ -n "$SESSION$COMMANDS" ]; then
  # The job's session on this port: fresh-start reseeds, then relays the port to the server
  # (which needs a socket) and stays until the session ends. Its first bytes on the port are the
  # server's first line — dropbear's identification, or job-commands' greeting (an image may
  # start it through a script of its own) —, the host's signal that it runs with what it sent.
  if [ -z "$COMMANDS" ]; then
    fresh-start "$SEED" "$CLOCK" --relay 3 dropbear -i -r $KEY -s -W 2097152 &
  elif [ -x /usr/lib/solstice/job-commands ]; then
    fresh-start "$SEED" "$CLOCK" --relay 3 /usr/lib/solstice/job-commands &
  else
    fresh-start "$SEED" "$CLOCK" --relay 3 job-commands &
  fi
  session=$!
  # The agent has nothing urgent left: at the lowest priority from here, and the listener on
  # port 22 (debug access) starts only once the job's handshake has had the vCPU: a process
  # starting beside it under emulation still took tens of milliseconds from the handshake, even
  # at nice 19. The listener gets its own fresh-start, so a reseed precedes it in any case.
  renice -n 19 -p $$ >/dev/null || say "renice failed"
  sleep 1
  fresh-start "$SEED" 0 dropbear -r $KEY -s -p 22 -W 2097152 3>&- || say "the listener on port 22 did not start"
  say "ssh session served on $PORT, listener on port 22"
  wait $session
  case $? in
    0) ;;
    2) echo "FAILED bad-time-or-seed" >&3 ;;
    3) echo "FAILED reseed" >&3 ;;
    *) echo "FAILED dropbear" >&3 ;;
  esac
  exit 0
fi
# dropbear forks into the background once it has started; its first process's status comes back.
fresh-start "$SEED" "$CLOCK" dropbear -r $KEY -s -p 22 -W 2097152
case $? in
  0) ;;
  2) echo "FAILED bad-time-or-seed" >&3; exit 0 ;;
  3) echo "FAILED reseed" >&3; exit 0 ;;
  *) echo "FAILED dropbear" >&3; exit 0 ;;
esac
# READY promises a listening port, so the host connects at once instead of probing for the banner
# (a probe's connection costs a dropbear child that competes with the real one). Builtins only.
listening() {
  while read -r _ local _ st _; do
    [ "$local" = 00000000:0016 ] && [ "$st" = 0A ] && return 0
  done < /proc/net/tcp
  return 1
}
i=0
until listening; do
  i=$((i+1))
  if [ $i -gt 300 ]; then
    echo "FAILED dropbear-not-listening" >&3
    exit 0
  fi
  sleep 0.01
done
echo READY >&3
say "ssh ready (agent)"
