#!/usr/bin/env bash
# How long `keelctl rotate-ca` takes on a local cluster of one control plane and N
# workers (127.0.1.x), for the OS CA: prints the cluster's size and keelctl's own
# figure. A figure, not a check.
# Usage: bench/rotate_ca.sh [BUILD_DIR] [WORKERS...]   (default: build, 2 and 20)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(2 20)
keelctl=$build/cmd/keelctl/keelctl
machined=$build/services/machined/machined
for f in "$keelctl" "$machined" "$build/services/apid/apid" "$build/services/trustd/trustd"; do
  [[ -x $f ]] || { echo "rotate_ca.sh: $f is not built (scripts/build.sh $build)" >&2; exit 2; }
done

work=$(mktemp -d)
chmod 0711 "$work"
root=""
cleanup() {
  [[ -n $root && -d $root ]] && "$keelctl" cluster destroy --root "$root" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$work/libexec"
install -m 0755 "$build/services/apid/apid" "$build/services/trustd/trustd" "$work/libexec/"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for workers in "${sizes[@]}"; do
  root=$work/cluster-$workers
  "$keelctl" cluster create --workers "$workers" --root "$root" --machined "$machined" \
    --libexec "$work/libexec" --api-port "$(free_port)" --join-port "$(free_port)" --wait 300 >/dev/null
  out=$(KEELCONFIG="" "$keelctl" --keelconfig "$root/keelconfig" rotate-ca --wait 10m)
  line=$(grep '^rotated ' <<<"$out")
  echo "1+$workers nodes: $line"
  "$keelctl" cluster destroy --root "$root" >/dev/null
  root=""
done
