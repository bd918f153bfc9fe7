#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds keelctl, and generates a new cluster:
# its secrets bundle, the control-plane and worker machine configs and an admin
# client config, then shows what was made.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
keelctl=$PWD/build/cmd/keelctl/keelctl

out=${KEEL_OUT:-$PWD/out/cluster-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
chmod 700 "$out"

echo "== keelctl gen secrets"
"$keelctl" gen secrets -o "$out/secrets.json"
echo
echo "== keelctl gen config demo 127.0.1.1"
"$keelctl" gen config demo 127.0.1.1 --with-secrets "$out/secrets.json" -o "$out"
echo
echo "== files"
ls -l "$out"
echo
echo "== keelctl config info"
"$keelctl" --keelconfig "$out/keelconfig" config info
echo
echo "Everything is in $out (secrets.json and controlplane.json hold CA keys: keep them private)."
