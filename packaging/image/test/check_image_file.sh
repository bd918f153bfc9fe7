#!/usr/bin/env bash
# Checks the image file of a built image directory: each part is the build's file of that
# name, the dm-verity tree verifies the root with the manifest's root hash and salt, and
# the file stays within its size budget (24 MiB).
# Usage: check_image_file.sh IMAGE_DIR KEEL_IMAGE_PACK
set -euo pipefail
dir=$1 pack=$2
export PATH=$PATH:/usr/sbin:/sbin
command -v veritysetup >/dev/null || { echo "SKIP: veritysetup is missing (Debian package cryptsetup-bin)"; exit 77; }
image=$dir/keel.img
[[ -f $image ]] || { echo "FAIL: no $image"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A build=([kernel]=vmlinuz [initramfs]=initrd.img [root]=root.squashfs [verity]=root.verity)
for part in "${!build[@]}"; do
  "$pack" extract "$image" --part "$part" -o "$work/$part"
  cmp -s "$work/$part" "$dir/${build[$part]}" || { echo "FAIL: part $part differs from ${build[$part]}"; exit 1; }
done

"$pack" show "$image" > "$work/manifest.json"
field() { sed -n "s/.*\"$1\": \"\\([0-9a-f]*\\)\".*/\\1/p" "$work/manifest.json"; }
root_hash=$(field root_hash)
salt=$(field salt)
[[ ${#root_hash} -eq 64 ]] || { echo "FAIL: no root hash in the manifest"; exit 1; }
veritysetup verify --no-superblock --hash=sha256 --data-block-size=4096 --hash-block-size=4096 --salt="$salt" \
  "$work/root" "$work/verity" "$root_hash" || { echo "FAIL: the verity tree does not verify the root"; exit 1; }
# A wrong root hash must not verify: the check above means something.
wrong=$(printf '%064d' 0)
if veritysetup verify --no-superblock --salt="$salt" "$work/root" "$work/verity" "$wrong" 2>/dev/null; then
  echo "FAIL: a wrong root hash verified"; exit 1
fi

size=$(stat -c %s "$image")
limit=$((24 * 1024 * 1024))
echo "image file $(readlink "$image"): $size bytes"
[[ $size -le $limit ]] || { echo "FAIL: $size bytes is more than 24 MiB"; exit 1; }
echo "ok"
