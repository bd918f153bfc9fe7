#!/usr/bin/env bash
# Checks the systemd packaging of Keel without a running systemd and without touching the
# host's /etc or /usr: every unit passes `systemd-analyze verify`, every service's
# `systemd-analyze security --offline` exposure stays at or under its threshold, and the
# sysusers.d and tmpfiles.d files produce the users, groups and directories the units
# rely on. Everything happens in a temporary directory.
#
#   integration-tests/packaging_test.sh <packaging-dir>
set -euo pipefail

packaging=${1:?usage: packaging_test.sh <packaging-dir>}
packaging=$(cd "$packaging" && pwd)

# Highest accepted exposure per service (systemd-analyze security, 0.0 best .. 10.0).
# Slightly above what the units achieve; see packaging/README.md for why each scores so.
declare -A threshold=(
  [keel-machined.service]=2.5
  [keel-apid.service]=1.5
  [keel-trustd.service]=0.5
)

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool not found: install Debian's systemd package (scripts/setup.sh)"
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/keel-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
units=("$packaging"/systemd/*.service "$packaging"/systemd/*.socket)
shopt -u nullglob
[[ ${#units[@]} -gt 0 ]] || { echo "FAIL: no units in $packaging/systemd"; exit 1; }
for unit in "${units[@]}"; do
  name=$(basename "$unit")
  if [[ $name == *.service && -z ${threshold[$name]:-} ]]; then
    fail "$name has no exposure threshold in $0"
  fi
done

# --- systemd-analyze verify ------------------------------------------------------------
# verify resolves ExecStart= binaries and the units' dependencies (sysinit.target, ...)
# under --root. The root holds the distribution's units, the Keel units exactly as
# shipped, and an executable stub at each ExecStart= path: the daemons are installed by
# the package, not present on a build machine.
root=$tmp/root
mkdir -p "$root/usr/lib/systemd/system" "$root/etc/systemd/system"
for dir in /usr/lib/systemd/system /lib/systemd/system; do
  if [[ -d $dir ]]; then
    cp -a "$dir/." "$root/usr/lib/systemd/system/"
    break
  fi
done
cp "${units[@]}" "$root/usr/lib/systemd/system/"
for unit in "${units[@]}"; do
  while read -r exe; do
    [[ $exe == /* ]] || { fail "$(basename "$unit"): ExecStart= must name an absolute path, found '$exe'"; continue; }
    mkdir -p "$root$(dirname "$exe")"
    printf '#!/bin/sh\nexit 0\n' >"$root$exe"
    chmod 0755 "$root$exe"
  done < <(sed -n -E 's/^Exec(Start|StartPre|StartPost|Stop|StopPost|Reload|Condition)=[-@:+!]*([^[:space:]]+).*/\2/p' "$unit")
done

for unit in "${units[@]}"; do
  name=$(basename "$unit")
  # verify reports most problems (unknown keys, bad values) as warnings with status 0:
  # any output at all fails the test.
  if out=$(systemd-analyze verify --root="$root" --man=no --generators=no "$name" 2>&1) && [[ -z $out ]]; then
    echo "ok: systemd-analyze verify $name"
  else
    fail "systemd-analyze verify $name:"
    sed 's/^/    /' <<<"$out"
  fi
done

# --- systemd-analyze security ----------------------------------------------------------
printf '%-24s %8s %10s\n' "unit" "exposure" "threshold"
for unit in "${units[@]}"; do
  name=$(basename "$unit")
  [[ $name == *.service ]] || continue
  if ! out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1); then
    fail "systemd-analyze security $name exited with an error:"
    sed 's/^/    /' <<<"$out"
    continue
  fi
  score=$(sed -n -E "s/.*Overall exposure level for ${name//./\\.}: ([0-9]+\.[0-9]+).*/\1/p" <<<"$out")
  if [[ -z $score ]]; then
    fail "systemd-analyze security $name: no overall exposure level in its output:"
    sed 's/^/    /' <<<"$out"
    continue
  fi
  limit=${threshold[$name]:-0.0}
  printf '%-24s %8s %10s\n' "$name" "$score" "$limit"
  if awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
    fail "$name: exposure $score is above its threshold $limit; what it allows:"
    grep '✗' <<<"$out" | sed 's/^/    /'
  fi
done

# --- sysusers.d and tmpfiles.d -------------------------------------------------------------
before=$failures
# Applied to an empty root: the users and groups exist, keel-apid is in keel, and the
# directories get the owners and modes the units expect.
sroot=$tmp/sysroot
mkdir -p "$sroot/etc"
if ! out=$(systemd-sysusers --root="$sroot" "$packaging/sysusers.d/keel.conf" 2>&1); then
  fail "systemd-sysusers keel.conf:"
  sed 's/^/    /' <<<"$out"
fi
for user in keel-apid keel-trustd; do
  grep -q "^$user:" "$sroot/etc/passwd" 2>/dev/null || fail "sysusers.d: no user $user"
  grep -q "^$user:" "$sroot/etc/group" 2>/dev/null || fail "sysusers.d: no group $user"
done
members=$(awk -F: '$1 == "keel" { print $4 }' "$sroot/etc/group" 2>/dev/null)
[[ ,$members, == *,keel-apid,* ]] || fail "sysusers.d: keel-apid is not a member of keel (members: '$members')"
for user in keel-trustd; do
  [[ ,$members, != *,$user,* ]] || fail "sysusers.d: $user must not be a member of keel"
done
if ! out=$(systemd-tmpfiles --root="$sroot" --create "$packaging/tmpfiles.d/keel.conf" 2>&1); then
  fail "systemd-tmpfiles keel.conf:"
  sed 's/^/    /' <<<"$out"
fi
keel_gid=$(awk -F: '$1 == "keel" { print $3 }' "$sroot/etc/group" 2>/dev/null)
for expect in "etc/keel 711" "var/lib/keel 711" "var/log/keel 700" "run/keel 750"; do
  read -r dir mode <<<"$expect"
  got=$(stat -c '%a %u %g' "$sroot/$dir" 2>/dev/null || echo missing)
  [[ $got == "$mode 0 $keel_gid" ]] || fail "tmpfiles.d: /$dir: expected mode $mode root:keel (gid $keel_gid), found '$got'"
done
[[ $failures -gt $before ]] || echo "ok: sysusers.d and tmpfiles.d"

if [[ $failures -gt 0 ]]; then
  echo "packaging: $failures failure(s)"
  exit 1
fi
echo "packaging: all checks passed"
