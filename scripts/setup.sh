#!/usr/bin/env bash
# Installs every build and test dependency of Keel from Debian 12's packages.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev openssl
  libboost-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libyaml-cpp-dev
  libseccomp-dev libcli11-dev
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
  android-libboringssl-dev
  procps iproute2 strace systemd
  python3 python3-cryptography  # strict DER parser (not OpenSSL) for the certificate tests
  universal-ctags  # function lengths for scripts/lint.sh
  nginx  # reference mTLS gRPC proxy that bench/keel_bench compares apid with
  # The OS image (packaging/image) and its boot tests; the kernel itself is fetched at
  # image build time with `apt-get download` and never installed on this host.
  qemu-system-x86 squashfs-tools cpio kmod e2fsprogs ca-certificates binutils cryptsetup-bin
)
BACKPORTS_PACKAGES=(libcatch2-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
catch2_ok=0
if dpkg-query -W -f='${Status} ${Version}' libcatch2-dev 2>/dev/null | grep -q "install ok installed 3\."; then
  catch2_ok=1
fi

if [[ ${#missing[@]} -eq 0 && $catch2_ok -eq 1 ]]; then
  echo "setup.sh: all dependencies present"
  exit 0
fi

# Catch2 v3 comes from bookworm-backports: add that suite to the existing
# Debian entry rather than writing a new source.
enable_backports() {
  local changed=0 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    if grep -qE '^Suites:.*\bbookworm\b' "$f" && ! grep -qE '^Suites:.*bookworm-backports' "$f"; then
      # Only the stanza that carries the plain 'bookworm' suite gets it.
      sed -i -E '/^Suites:/{/(^|[[:space:]])bookworm([[:space:]]|$)/s/$/ bookworm-backports/}' "$f"
      changed=1
    fi
  done
  if [[ $changed -eq 0 && -f /etc/apt/sources.list ]] && \
     ! grep -qE '^deb .*bookworm-backports' /etc/apt/sources.list; then
    # Legacy one-line format: repeat the existing bookworm line with the backports suite.
    local line
    line=$(grep -E '^deb [^#]* bookworm( |$)' /etc/apt/sources.list | head -n1 || true)
    if [[ -n $line ]]; then
      echo "${line/ bookworm/ bookworm-backports}" >> /etc/apt/sources.list
      changed=1
    fi
  fi
  if ! grep -rqsE 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup.sh: could not find a Debian bookworm apt source to add bookworm-backports to" >&2
    exit 1
  fi
}

# A system id (999 down to 100) that no group has and no user has as its id or primary
# group: a base image may list users whose primary groups are missing, and a new group
# must not take such a number.
free_system_id() {
  local id
  for ((id = 999; id >= 100; id--)); do
    getent group "$id" >/dev/null && continue
    getent passwd "$id" >/dev/null && continue
    cut -d: -f4 /etc/passwd | grep -qx "$id" && continue
    echo "$id"
    return 0
  done
  return 1
}

# dpkg installs nothing while its statoverride file names a user or group that does not
# exist (seen on a base image that had dropped the packages owning them): create those
# as system accounts with ids nobody has, as their packages would have. Argument: the
# file (for testing).
repair_statoverride() {
  local file=${1:-/var/lib/dpkg/statoverride}
  [[ -r $file ]] || return 0
  local owner group _ id
  while read -r owner group _; do
    [[ -n $group ]] || continue
    if ! getent group "$group" >/dev/null; then
      id=$(free_system_id)
      echo "setup.sh: dpkg's statoverride names group '$group', which does not exist: adding it (gid $id)"
      groupadd --system --gid "$id" "$group"
    fi
    if ! getent passwd "$owner" >/dev/null; then
      id=$(free_system_id)
      echo "setup.sh: dpkg's statoverride names user '$owner', which does not exist: adding it (uid $id)"
      groupadd --system --gid "$id" "$owner" 2>/dev/null || true
      useradd --system --uid "$id" --gid "$owner" --no-create-home --shell /usr/sbin/nologin "$owner"
    fi
  done <"$file"
}

enable_backports
repair_statoverride
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ $catch2_ok -eq 0 ]]; then
  apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS_PACKAGES[@]}"
fi
echo "setup.sh: dependencies installed"
