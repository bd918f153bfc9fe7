#!/usr/bin/env bash
# Builds Keel's bootable node image from the project's binaries and Debian 12 packages:
#   root.squashfs   read-only root: the Keel daemons, exactly the shared libraries they
#                   load, CA certificates, the accounts they run under; nothing else
#   initrd.img      the initramfs: keel_init and the kernel modules needed to mount the root
#   vmlinuz         the kernel of Debian's linux-image-amd64
#   manifest.txt    every file of the root with its sha256 (symlinks with their target)
#   kernel-version  the kernel's release (its ABI number changes with security updates)
#   root.verity     the root's dm-verity hash tree (veritysetup format, no superblock)
#   root.disk       what the root disk holds: root.squashfs, then root.verity
#   keel-VERSION.img  the image file: the four parts above behind a manifest that
#                   `keelctl sign-image` signs (packaging/image/README.md, "The image file")
# Driven by the CMake target `image` (not part of the default build).
# Exit status 77: a required tool is missing (the tests report it as skipped).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: build-image.sh --out DIR --binary FILE... [--backend FILE]... --init FILE --pack FILE
                      --version VERSION [--build-id ID] [--kernel-deb FILE]

  --out DIR          where the image's files are written (a cache of the kernel package too)
  --binary FILE      a Keel daemon to install (repeatable): machined and apid are required,
                     trustd goes in when given
  --backend FILE     a backend's staged manifest (<libexec>/backends/<name>.json, as
                     keel_backend() writes it; repeatable): the manifest, its descriptor
                     set and seccomp profile go to /usr/libexec/keel/backends, its binary
                     (<libexec>/<name>) to /usr/libexec/keel
  --init FILE        the static keel_init binary (the initramfs's /init)
  --pack FILE        the keel_image_pack binary, which writes the image file
  --version VERSION  the image's version, MAJOR.MINOR.PATCH (CMake: KEEL_IMAGE_VERSION)
  --build-id ID      what identifies the build (default: the git commit, else "unknown")
  --kernel-deb FILE  use this linux-image-*-amd64 .deb instead of `apt-get download`ing
                     the version linux-image-amd64 depends on
EOF
}

out="" init="" kernel_deb="" pack="" version="" build_id=""
binaries=()
backends=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --binary) binaries+=("$2"); shift 2 ;;
    --backend) backends+=("$2"); shift 2 ;;
    --init) init=$2; shift 2 ;;
    --kernel-deb) kernel_deb=$2; shift 2 ;;
    --pack) pack=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --build-id) build_id=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ -z $out || ${#binaries[@]} -eq 0 || -z $init || -z $pack || -z $version ]]; then
  usage >&2
  exit 2
fi

# Tools, with the Debian package each comes from (scripts/setup.sh installs them).
declare -A tools=([mksquashfs]=squashfs-tools [cpio]=cpio [depmod]=kmod [modprobe]=kmod
  [dpkg-deb]=dpkg [apt-get]=apt [apt-cache]=apt [strip]=binutils [gzip]=gzip [ldd]=libc-bin
  [sha256sum]=coreutils [veritysetup]=cryptsetup-bin)
for t in "${!tools[@]}"; do
  if ! command -v "$t" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$t && ! -x /sbin/$t ]]; then
    echo "build-image.sh: SKIP: '$t' is missing (Debian package ${tools[$t]}; scripts/setup.sh installs it)" >&2
    exit 77
  fi
done
export PATH=$PATH:/usr/sbin:/sbin
if [[ ! -f /etc/ssl/certs/ca-certificates.crt ]]; then
  echo "build-image.sh: SKIP: /etc/ssl/certs/ca-certificates.crt is missing (Debian package ca-certificates)" >&2
  exit 77
fi
declare -A daemon_path=()
for b in "${binaries[@]}"; do
  [[ -x $b ]] || { echo "build-image.sh: $b is not an executable" >&2; exit 1; }
  daemon_path[$(basename "$b")]=$b
done
for m in "${backends[@]}"; do
  name=$(basename "$m" .json)
  for f in "$m" "${m%.json}.pb" "${m%.json}.policy"; do
    [[ -f $f ]] || { echo "build-image.sh: backend $name: $f is missing" >&2; exit 1; }
  done
  bin=$(dirname "$(dirname "$m")")/$name
  [[ -x $bin ]] || { echo "build-image.sh: backend $name: $bin is not an executable" >&2; exit 1; }
  daemon_path[$name]=$bin
done
for b in machined apid; do
  [[ -n ${daemon_path[$b]:-} ]] || { echo "build-image.sh: no --binary for $b" >&2; exit 1; }
done
[[ -x $init ]] || { echo "build-image.sh: $init is not built" >&2; exit 1; }
[[ -x $pack ]] || { echo "build-image.sh: $pack is not built" >&2; exit 1; }
if [[ -z $build_id ]]; then
  build_id=$(git -C "$(dirname "$0")" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
fi

mkdir -p "$out/cache"
out=$(cd "$out" && pwd)

# --- The kernel: Debian's, never installed on this host. ---------------------------------
if [[ -z $kernel_deb ]]; then
  # linux-image-amd64 is a metapackage: it depends on the current ABI's real package.
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
  if [[ -z $pkg ]]; then
    echo "build-image.sh: apt-cache does not know linux-image-amd64's kernel package (run apt-get update)" >&2
    exit 1
  fi
  kernel_deb=$(ls "$out"/cache/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [[ -z $kernel_deb ]]; then
    echo "build-image.sh: downloading $pkg"
    (cd "$out/cache" && apt-get download -q "$pkg" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
    kernel_deb=$(ls "$out"/cache/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    [[ -n $kernel_deb ]] || { echo "build-image.sh: apt-get download $pkg failed" >&2; exit 1; }
  fi
fi
kdir=$out/cache/kernel
# Unpacked once per package: the stamp names the .deb the tree came from.
deb_sum=$(sha256sum < "$kernel_deb" | cut -d' ' -f1)
if [[ ! -f $kdir/.from-deb || $(cat "$kdir/.from-deb") != "$deb_sum" ]]; then
  rm -rf "$kdir"
  mkdir -p "$kdir"
  dpkg-deb -x "$kernel_deb" "$kdir"
  kver=$(ls "$kdir/lib/modules" | head -n1)
  [[ -n $kver && -f $kdir/boot/vmlinuz-$kver ]] || { echo "build-image.sh: no kernel in $kernel_deb" >&2; exit 1; }
  depmod -b "$kdir" "$kver"
  echo "$deb_sum" > "$kdir/.from-deb"
fi
kver=$(ls "$kdir/lib/modules" | head -n1)
cp "$kdir/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$kver" > "$out/kernel-version"

# --- The root. -----------------------------------------------------------------------------
root=$out/root.d
rm -rf "$root"
mkdir -p "$root"/{usr/libexec/keel,usr/lib/x86_64-linux-gnu,usr/lib64,etc/keel,etc/ssl/certs,proc,sys,dev,run,var,tmp}
# Debian's merged /usr: the loader's path in every binary is /lib64/ld-linux-x86-64.so.2.
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
chmod 0700 "$root/etc/keel"
chmod 1777 "$root/tmp"

for d in "${!daemon_path[@]}"; do
  install -m 0755 "${daemon_path[$d]}" "$root/usr/libexec/keel/$d"
  strip --strip-unneeded "$root/usr/libexec/keel/$d"
done

# Backends: manifest, descriptor set (read by apid) and seccomp profile (read by machined).
if [[ ${#backends[@]} -gt 0 ]]; then
  install -d -m 0755 "$root/usr/libexec/keel/backends"
  for m in "${backends[@]}"; do
    for f in "$m" "${m%.json}.pb" "${m%.json}.policy"; do
      install -m 0644 "$f" "$root/usr/libexec/keel/backends/"
    done
  done
fi

# mke2fs formats the state disk on first boot.
install -d "$root/usr/sbin"
install -m 0755 /usr/sbin/mke2fs "$root/usr/sbin/mke2fs"

# Exactly the shared libraries the binaries load, as ldd resolves them on this host,
# stored under their own names at the paths the loader looks in.
copy_lib() {
  local lib=$1 name
  name=$(basename "$lib")
  [[ -e $root/usr/lib/x86_64-linux-gnu/$name ]] && return
  # The loader must be executable: the kernel opens it like a program.
  local mode=0644
  [[ $name == ld-linux* ]] && mode=0755
  install -m "$mode" "$(readlink -f "$lib")" "$root/usr/lib/x86_64-linux-gnu/$name"
  strip --strip-unneeded "$root/usr/lib/x86_64-linux-gnu/$name"
}
for exe in "$root"/usr/libexec/keel/* "$root/usr/sbin/mke2fs"; do
  [[ -f $exe ]] || continue
  while read -r lib; do
    copy_lib "$lib"
  done < <(ldd "$exe" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*ld-linux[^ ]*\) .*/\1/p')
done
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/usr/lib64/ld-linux-x86-64.so.2"

install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

# The accounts machined starts services under (see packaging/sysusers.d/keel.conf), and
# one for each backend of the image, keel-<name>: no two backends share an account. No
# login shell exists, so none is named.
backend_users=()
for m in "${backends[@]}"; do backend_users+=("keel-$(basename "$m" .json)"); done
{
  echo 'root:x:0:0:root:/nonexistent:/nonexistent'
  echo 'keel-apid:x:100:100:Keel apid:/nonexistent:/nonexistent'
  echo 'keel-trustd:x:101:101:Keel trustd:/nonexistent:/nonexistent'
  for i in "${!backend_users[@]}"; do
    echo "${backend_users[$i]}:x:$((200 + i)):$((200 + i)):Keel backend:/nonexistent:/nonexistent"
  done
  echo 'nobody:x:65534:65534:nobody:/nonexistent:/nonexistent'
} > "$root/etc/passwd"
{
  printf '%s\n' 'root:x:0:' 'keel:x:99:keel-apid' 'keel-apid:x:100:' 'keel-trustd:x:101:'
  for i in "${!backend_users[@]}"; do echo "${backend_users[$i]}:x:$((200 + i)):"; done
  echo 'nogroup:x:65534:'
} > "$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf" "$root/etc/hosts"

# The version the root runs as until an image's manifest says otherwise (machined reads it
# on the factory slot): "VERSION BUILD_ID".
install -d "$root/usr/share/keel"
echo "$version $build_id" > "$root/usr/share/keel/image-version"
chmod 0644 "$root/usr/share/keel/image-version"

# The manifest: every entry of the root, sorted, with its sha256 (a symlink with its
# target, a directory with its mode). A copy is inside the root, which it cannot list.
manifest=$out/manifest.txt
(
  cd "$root"
  find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
    f=${p#.}
    if [[ -L $p ]]; then
      echo "link $f -> $(readlink "$p")"
    elif [[ -d $p ]]; then
      echo "dir $f $(stat -c %a "$p")"
    else
      echo "file $f $(stat -c %a "$p") $(sha256sum < "$p" | cut -d' ' -f1)"
    fi
  done
) > "$manifest"
install -m 0644 "$manifest" "$root/usr/share/keel/manifest.txt"

rm -f "$out/root.squashfs"
mksquashfs "$root" "$out/root.squashfs" -comp zstd -all-root -noappend -quiet -no-progress >/dev/null

# --- The dm-verity hash tree and the image file. -----------------------------------------
# No superblock: the image's manifest carries the parameters. The salt is the root's
# SHA-256, so the same root always gives the same tree.
salt=$(sha256sum < "$out/root.squashfs" | cut -d' ' -f1)
verity_out=$(veritysetup format --no-superblock --data-block-size=4096 --hash-block-size=4096 --hash=sha256 \
  --salt="$salt" "$out/root.squashfs" "$out/root.verity")
root_hash=$(sed -n 's/^Root hash:[[:space:]]*\([0-9a-f]*\)$/\1/p' <<<"$verity_out")
[[ ${#root_hash} -eq 64 ]] || { echo "build-image.sh: veritysetup printed no root hash: $verity_out" >&2; exit 1; }
chmod 0644 "$out/root.verity"
# The root disk: the root, then its tree (the factory root's hash offset is the root's size).
cat "$out/root.squashfs" "$out/root.verity" > "$out/root.disk"
chmod 0644 "$out/root.disk"

# --- The initramfs: keel_init and the modules, in load order. ----------------------------
# Disks and network are virtio; the root is squashfs (on a disk or, for an upgraded slot,
# a file of the state disk through a loop device) read through dm-verity, the state disk
# ext4. Built after the root: it carries the factory root's verity parameters.
modules=(virtio_pci virtio_blk virtio_net squashfs ext4 loop dm_verity)
initrd=$out/initrd.d
rm -rf "$initrd"
mkdir -p "$initrd/etc" "$initrd/lib/modules" "$initrd/dev" "$initrd/proc" "$initrd/sys" "$initrd/newroot"
: > "$initrd/etc/modules.order"
for m in "${modules[@]}"; do
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue
    name=$(basename "$path")
    if ! grep -qx "/lib/modules/$name" "$initrd/etc/modules.order"; then
      cp "$path" "$initrd/lib/modules/$name"
      echo "/lib/modules/$name" >> "$initrd/etc/modules.order"
    fi
  done < <(modprobe -d "$kdir" -S "$kver" --show-depends "$m")
done
install -m 0755 "$init" "$initrd/init"
strip --strip-all "$initrd/init"
# The initramfs is two archives, which the kernel unpacks one after the other. The first
# (gzip) is what boots: keel_init and the modules. It is padded with zero bytes to a whole
# number of 4-byte words, where the kernel looks for the next archive. The second
# (uncompressed, so that keel_init can read a slot's without a decompressor) only names
# this build: the factory root's verity parameters, the initramfs's version, and the
# kernel's and the first archive's size and SHA-256. A slot whose kernel and first archive
# are the running ones, and whose second archive holds nothing else, boots without a kexec
# (packaging/image/README.md, "Booting a slot").
# Reproducible: every time stamp 0, inode and device numbers renumbered, no name or time in
# the gzip header; two builds of the same keel_init and modules give the same bytes.
boot_archive=$out/initrd-boot.cpio.gz
find "$initrd" -exec touch -h -d @0 {} +
(cd "$initrd" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible |
  gzip -9 -n) > "$boot_archive"
truncate -s $(( ($(stat -c %s "$boot_archive") + 3) / 4 * 4 )) "$boot_archive"
names=$out/initrd-names.d
rm -rf "$names"
mkdir -p "$names/etc"
# The factory root's dm-verity parameters: the same "verity" object as the image manifest's,
# and the root's size, after which the tree follows on the root disk.
printf '{"root_size": %s, "verity": {"data_block_size": 4096, "hash_algorithm": "sha256", "hash_block_size": 4096, "root_hash": "%s", "salt": "%s"}}\n' \
  "$(stat -c %s "$out/root.squashfs")" "$root_hash" "$salt" > "$names/etc/factory-root.json"
# What this initramfs is, "VERSION BUILD_ID": keel_init hands it to machined, which reports it.
echo "$version $build_id" > "$names/etc/initramfs-version"
printf '{"boot_archive_sha256": "%s", "boot_archive_size": %s, "kernel_sha256": "%s"}\n' \
  "$(sha256sum "$boot_archive" | cut -d' ' -f1)" "$(stat -c %s "$boot_archive")" \
  "$(sha256sum "$out/vmlinuz" | cut -d' ' -f1)" > "$names/etc/initramfs-boot.json"
find "$names" -exec touch -h -d @0 {} +
(cd "$names" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
  cat "$boot_archive" - > "$out/initrd.img"
rm -f "$boot_archive"

image_file=$out/keel-$version.img
rm -f "$out"/keel-*.img
"$pack" pack --kernel "$out/vmlinuz" --initramfs "$out/initrd.img" --root "$out/root.squashfs" \
  --verity "$out/root.verity" --version "$version" --build-id "$build_id" --root-hash "$root_hash" \
  --salt "$salt" -o "$image_file"
ln -sfn "$(basename "$image_file")" "$out/keel.img"

echo "build-image.sh: kernel $kver; root $(du -h "$out/root.squashfs" | cut -f1) ($(grep -c '^file' "$manifest") files), initramfs $(du -h "$out/initrd.img" | cut -f1), kernel $(du -h "$out/vmlinuz" | cut -f1) in $out"
image_bytes=$(stat -c %s "$image_file")
echo "build-image.sh: image file $image_file: version $version, build $build_id, $image_bytes bytes ($(awk -v b="$image_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
