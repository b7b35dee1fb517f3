#!/bin/sh
# The image's entrypoint: starts as root only to let the service user open the devices compose hands
# in, then runs the command as that user (solstice) with no capabilities and no way to gain any
# (docs/decisions/0004-rootless-vm-network.md).
set -eu
user=solstice
for dev in /dev/net/tun /dev/kvm; do
  [ -e "$dev" ] || continue
  # The runtime makes the container's own copy of each device node, owned by root and with the
  # host's mode, which is 0600 on some hosts. Changing that copy changes nothing on the host, and
  # needs no capability: root owns it.
  if ! setpriv --reuid="$user" --regid="$user" --init-groups -- test -r "$dev" -a -w "$dev"; then
    chmod 0666 "$dev" || echo "solstice entrypoint: $user cannot open $dev and its mode cannot be changed" >&2
  fi
done
# A compose file secret is the host's file, mounted as it is: often 0600 and owned by root. Root
# may read what it owns; the service user gets a copy of its own in memory (/dev/shm), written by
# a process that already runs as that user, so no ownership needs changing.
if [ -n "${SOLSTICE_FLEET_KEYS_FILE:-}" ] && [ -r "$SOLSTICE_FLEET_KEYS_FILE" ] \
  && ! setpriv --reuid="$user" --regid="$user" --init-groups -- test -r "$SOLSTICE_FLEET_KEYS_FILE"; then
  copy=/dev/shm/solstice/fleet_keys
  setpriv --reuid="$user" --regid="$user" --init-groups -- \
    sh -c 'umask 077 && mkdir -p "${1%/*}" && cat > "$1"' solstice-keys "$copy" < "$SOLSTICE_FLEET_KEYS_FILE"
  export SOLSTICE_FLEET_KEYS_FILE="$copy"
fi
exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- "$@"
