#!/usr/bin/env bash
# Checks the built root filesystem (IMAGE_DIR/root.squashfs) from the outside: it holds no
# shell, interpreter, package manager, remote login or getty; no script; no setuid file;
# every file is in the manifest with its sha256 and every manifest entry is in the root;
# every ELF file's libraries are in the root, and no library is there that nothing needs. Exit 77: nothing to check (the image was not
# built because a tool is missing) or unsquashfs is missing.
set -euo pipefail
image=${1:?usage: check_root.sh IMAGE_DIR}
export PATH=$PATH:/usr/sbin:/sbin
if ! command -v unsquashfs >/dev/null || ! command -v readelf >/dev/null; then
  echo "check_root.sh: SKIP: unsquashfs (squashfs-tools) or readelf (binutils) is missing" >&2
  exit 77
fi
if [[ ! -f $image/root.squashfs ]]; then
  echo "check_root.sh: SKIP: $image/root.squashfs was not built (see the 'image: build' test)" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unsquashfs -q -n -d "$work/root" "$image/root.squashfs" >/dev/null
root=$work/root
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Names of shells, interpreters, package managers, remote logins and gettys.
forbidden='^(sh|bash|dash|ash|zsh|ksh|mksh|csh|tcsh|fish|busybox|toybox|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|lua[0-9.]*|luajit|node|nodejs|tclsh[0-9.]*|wish[0-9.]*|php[0-9.]*|awk|gawk|mawk|nawk|sed|expect|guile[0-9.]*|apt|apt-get|dpkg|rpm|yum|dnf|pip[0-9.]*|ssh|sshd|dropbear|telnetd|getty|agetty|mingetty|login|su|sudo|doas|env|xargs|find)$'
while read -r path; do
  name=$(basename "$path")
  if [[ $name =~ $forbidden ]]; then fail "forbidden program in the root: ${path#$root}"; fi
done < <(find "$root" -mindepth 1)
while read -r path; do
  if [[ $(head -c 2 "$path") == '#!' ]]; then fail "script in the root: ${path#$root}"; fi
  if [[ -u $path || -g $path ]]; then fail "setuid/setgid file in the root: ${path#$root}"; fi
done < <(find "$root" -type f)
# Every libc-linked program that can run commands would find nothing to run, but say it
# the other way too: nothing executable lives outside the Keel directories.
while read -r path; do
  case ${path#$root} in
    /usr/libexec/keel/*|/usr/sbin/mke2fs|/usr/lib/x86_64-linux-gnu/*) ;;
    *) fail "executable outside the Keel directories: ${path#$root}" ;;
  esac
done < <(find "$root" -type f -perm /111)

# The manifest against the files.
manifest=$root/usr/share/keel/manifest.txt
[[ -f $manifest ]] || fail "no manifest at /usr/share/keel/manifest.txt"
if ! cmp -s "$manifest" "$image/manifest.txt"; then fail "the root's manifest differs from $image/manifest.txt"; fi
declare -A listed=()
while read -r kind path rest; do
  listed[$path]=1
  case $kind in
    file)
      want=${rest##* }
      if [[ ! -f $root$path ]]; then fail "listed but missing: $path"; continue; fi
      got=$(sha256sum < "$root$path" | cut -d' ' -f1)
      [[ $got == "$want" ]] || fail "sha256 of $path: manifest $want, root $got"
      ;;
    link)
      target=${rest#-> }
      [[ -L $root$path && $(readlink "$root$path") == "$target" ]] || fail "link $path is not -> $target"
      ;;
    dir) [[ -d $root$path ]] || fail "listed directory missing: $path" ;;
    *) fail "manifest line of unknown kind: $kind $path" ;;
  esac
done < "$manifest"
while read -r path; do
  p=${path#$root}
  [[ $p == /usr/share/keel/manifest.txt || -n ${listed[$p]:-} ]] || fail "in the root but not in the manifest: $p"
done < <(find "$root" -mindepth 1 ! -path "$root/usr/share/keel" ! -path "$root/usr/share")

# Every ELF's libraries are in the root, and every library there is needed by one.
declare -A needed=([ld-linux-x86-64.so.2]=1)
while read -r path; do
  if [[ $(head -c 4 "$path" | od -An -c | tr -d ' ') != '177ELF' ]]; then continue; fi
  while read -r lib; do
    needed[$lib]=1
    [[ -e $root/usr/lib/x86_64-linux-gnu/$lib ]] || fail "${path#$root} needs $lib, which is not in the root"
  done < <(readelf -d "$path" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done < <(find "$root" -type f)
for lib in "$root"/usr/lib/x86_64-linux-gnu/*; do
  [[ -n ${needed[$(basename "$lib")]:-} ]] || fail "library nothing in the root needs: ${lib#$root}"
done
for need in /usr/libexec/keel/machined /usr/libexec/keel/apid /etc/ssl/certs/ca-certificates.crt \
            /lib64/ld-linux-x86-64.so.2; do
  [[ -e $root$need ]] || fail "missing from the root: $need"
done

if [[ $failures -gt 0 ]]; then
  echo "check_root.sh: $failures problem(s) in $image/root.squashfs" >&2
  exit 1
fi
echo "check_root.sh: $(find "$root" -type f | wc -l) files checked, no shell, interpreter or unlisted file"
