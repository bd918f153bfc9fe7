#!/usr/bin/env bash
# check_root.sh must refuse roots that hold a shell, an interpreter, a script or an
# unlisted file: each is planted in a small root built here, and each must be reported.
set -euo pipefail
check=${1:?usage: check_root_selftest.sh CHECK_ROOT_SH}
export PATH=$PATH:/usr/sbin:/sbin
if ! command -v mksquashfs >/dev/null || ! command -v unsquashfs >/dev/null; then
  echo "check_root_selftest.sh: SKIP: mksquashfs/unsquashfs missing (Debian package squashfs-tools)" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A root like the image's: a listed daemon, the loader, CA certificates, the manifest.
make_image() {
  local name=$1 plant=$2
  local dir=$work/$name root=$work/$name/root.d
  mkdir -p "$root"/{usr/libexec/keel,usr/lib/x86_64-linux-gnu,usr/lib64,etc/ssl/certs,usr/share/keel}
  printf 'not an elf\n' > "$root/usr/libexec/keel/machined"
  printf 'not an elf\n' > "$root/usr/libexec/keel/apid"
  chmod 0755 "$root"/usr/libexec/keel/*
  printf 'x\n' > "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/usr/lib64/ld-linux-x86-64.so.2"
  ln -s usr/lib64 "$root/lib64"
  printf 'certs\n' > "$root/etc/ssl/certs/ca-certificates.crt"
  eval "$plant"
  (
    cd "$root"
    find . -mindepth 1 ! -path ./usr/share/keel ! -path ./usr/share ! -path ./usr/share/keel/manifest.txt \
      ! -path ./unlisted | LC_ALL=C sort | while read -r p; do
      f=${p#.}
      if [[ -L $p ]]; then echo "link $f -> $(readlink "$p")"
      elif [[ -d $p ]]; then echo "dir $f $(stat -c %a "$p")"
      else echo "file $f $(stat -c %a "$p") $(sha256sum < "$p" | cut -d' ' -f1)"; fi
    done
  ) > "$dir/manifest.txt"
  cp "$dir/manifest.txt" "$root/usr/share/keel/manifest.txt"
  mksquashfs "$root" "$dir/root.squashfs" -all-root -noappend -quiet -no-progress >/dev/null
}

failures=0
expect() {
  local name=$1 plant=$2 want=$3
  make_image "$name" "$plant"
  local out rc=0
  out=$("$check" "$work/$name" 2>&1) || rc=$?
  if [[ $want == pass ]]; then
    [[ $rc -eq 0 ]] || { echo "FAIL: $name: expected a pass, got: $out" >&2; failures=$((failures + 1)); }
  elif [[ $rc -eq 0 || $out != *"$want"* ]]; then
    echo "FAIL: $name: expected '$want', got (status $rc): $out" >&2
    failures=$((failures + 1))
  fi
}
expect clean ':' pass
expect shell 'mkdir -p "$root/bin"; printf x > "$root/bin/sh"' 'forbidden program in the root: /bin/sh'
expect busybox 'printf x > "$root/usr/libexec/keel/busybox"' 'forbidden program in the root: /usr/libexec/keel/busybox'
expect python 'printf x > "$root/usr/lib/x86_64-linux-gnu/python3.11"' 'forbidden program'
expect script 'printf "#!/x\n" > "$root/usr/libexec/keel/helper"' 'script in the root: /usr/libexec/keel/helper'
expect unlisted 'printf x > "$root/unlisted"' 'in the root but not in the manifest: /unlisted'
expect extra_library 'printf x > "$root/usr/lib/x86_64-linux-gnu/libextra.so.1"' 'library nothing in the root needs: /usr/lib/x86_64-linux-gnu/libextra.so.1'
expect setuid 'chmod 4755 "$root/usr/libexec/keel/apid"' 'setuid/setgid file in the root: /usr/libexec/keel/apid'
if [[ $failures -gt 0 ]]; then exit 1; fi
echo "check_root_selftest.sh: every planted problem was reported"
