# Sourced by the recipes: an apt of its own for Debian's packages of one architecture and suite,
# under "$1", so `apt-get download` fetches arm64 or riscv64 packages on an x86_64 host (or amd64
# ones on an arm64 host) without `dpkg --add-architecture`: the host's dpkg, its sources and its
# package lists stay as they are, and nothing is installed. Only its own package lists are
# fetched (~10 MB per architecture, a few seconds from a Debian mirror).
#
# Env: DEB_ARCH (amd64, arm64, riscv64), SUITE (bookworm, trixie), MIRROR, SECURITY_MIRROR.
# Defines: guest_apt (apt-get with this configuration), guest_apt_cache (apt-cache likewise).
debian_apt_setup() {
  local dir=$1
  : "${DEB_ARCH:?}" "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}"
  mkdir -p "$dir"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
    "$dir"/state/lists/partial "$dir"/cache/archives/partial
  : > "$dir/state/status"
  local key=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$key" ] || { echo "$key is missing (Debian's debian-archive-keyring package)" >&2; return 1; }
  cat > "$dir/etc/apt/sources.list" <<SOURCES
deb [signed-by=$key] $MIRROR $SUITE main
deb [signed-by=$key] $MIRROR $SUITE-updates main
deb [signed-by=$key] $SECURITY_MIRROR $SUITE-security main
SOURCES
  # Dir::Etc points away from /etc/apt, so none of the host's apt settings or sources apply.
  cat > "$dir/apt.conf" <<CONF
Dir "/";
Dir::Etc "$dir/etc/apt";
Dir::State "$dir/state";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
APT::Architecture "$DEB_ARCH";
APT::Architectures { "$DEB_ARCH"; };
Acquire::Languages "none";
CONF
  APT_CONFIG=$dir/apt.conf apt-get update -qq
  GUEST_APT_CONFIG=$dir/apt.conf
}
guest_apt() { APT_CONFIG=$GUEST_APT_CONFIG apt-get "$@"; }
guest_apt_cache() { APT_CONFIG=$GUEST_APT_CONFIG apt-cache "$@"; }
