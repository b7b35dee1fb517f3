#!/usr/bin/env bash
# Installs Debian's podman and podman-compose when missing (the system test of the compose
# deployment uses them), and writes a containers.conf of the project's own that works on these
# hosts, leaving the user's alone; prints its path, for CONTAINERS_CONF.
# Safe to run again: it installs only what is missing.
set -euo pipefail

# golang-github-containernetworking-plugin-dnsname: with Debian's CNI network backend, containers find
# each other by service name (rabbitmq, postgres) only through this plugin.
packages=(podman podman-compose uidmap slirp4netns fuse-overlayfs runc debootstrap
  golang-github-containernetworking-plugin-dnsname)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "podman.sh: installing Debian packages: ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir="${XDG_CACHE_HOME:-$HOME/.cache}/solstice/containers"
mkdir -p "$dir"
# crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"), there is no systemd to
# manage cgroups, and the runtimes cannot raise RLIMIT_NOFILE to podman's default here.
cat > "$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
echo "$dir/containers.conf"
