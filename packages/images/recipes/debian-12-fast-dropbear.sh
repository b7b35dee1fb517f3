#!/bin/sh
# /usr/sbin/dropbear of the debian-12-fast guest (Debian's dropbear is diverted to
# /usr/sbin/dropbear.real), and /usr/lib/solstice/job-commands, which the agent starts in its place
# to serve the job's commands on its channel (decision 0010): the same start either way. The key agent starts the SSH server through fresh-start, which sets the
# clock and forces the CRNG to reseed first, so this runs once per job, after the reseed, before the
# agent says READY: the place for what makes a restored clone of the template its own and what a
# step's environment needs. Builtins only: every process costs 10-40 ms under TCG after a restore.

# A new machine-id from the reseeded CRNG (a random UUID, as systemd makes one). The image ships an
# empty /etc/machine-id: on this read-write root PID 1 writes the id it makes at boot into it; on a
# read-only one it would bind-mount /run/machine-id over it, and that file is the one to write.
machine_id() {
  local IFS=-
  set -f
  printf '%s%s%s%s%s\n' $1
}
# Once per guest: the agent starts this twice (the job's session, then the listener on port 22 at
# the lowest priority), and a second id written under a running step would change it under it.
# The marker is made with noclobber, which opens it O_EXCL: of two starts, one makes it (`true`,
# not `:`, whose failed redirection would end the shell, and no subshell: no process). Noclobber
# is off again before the files below, which exist and are overwritten.
set -C
if true 2>/dev/null > /run/solstice-identity; then first=1; else first=; fi
set +C
if [ -n "$first" ]; then
  read -r uuid < /proc/sys/kernel/random/uuid
  if [ -f /run/machine-id ]; then machine_id "$uuid" > /run/machine-id; else machine_id "$uuid" > /etc/machine-id; fi
  # The agent set the kernel's hostname (NAME); tools that read the file see the same.
  read -r name < /proc/sys/kernel/hostname && echo "$name" > /etc/hostname
fi

# What every command (so every step) starts with, as GitHub's runners give it: dropbear and
# job-commands set USER, LOGNAME, HOME, SHELL and Debian's root PATH themselves and, with -e or
# --keep-env, pass on the rest of this environment, which is LANG and nothing of the agent's unit.
unset INVOCATION_ID JOURNAL_STREAM SYSTEMD_EXEC_PID
export LANG=C.UTF-8
case "$0" in
  */job-commands) exec /usr/sbin/job-commands --keep-env ;;
esac
exec /usr/sbin/dropbear.real -e "$@"
