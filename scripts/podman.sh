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
# shellcheck source=lib/debian-packages.sh
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/lib/debian-packages.sh"
install_debian_packages podman.sh "${packages[@]}"

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
