#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds Keel, generates a new cluster (secrets
# bundle, machine configs, admin client config), starts a control-plane node on
# 127.0.1.1 with --root (machined, which starts apid on 127.0.1.1:50000), talks to it
# with keelctl over mTLS through apid, and shuts it down again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_WERROR=ON >/dev/null
keelctl=$PWD/build/cmd/keelctl/keelctl
machined=$PWD/build/services/machined/machined
apid=$PWD/build/services/apid/apid

out=${KEEL_OUT:-$PWD/out/cluster-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
# Services run under their own accounts when this runs as root: they traverse this
# directory to their own (the secrets in it are mode 0600 files).
chmod 711 "$out"

echo "== keelctl gen secrets"
"$keelctl" gen secrets -o "$out/secrets.json"

# An example extension service for the node to supervise: it logs a heartbeat.
cat > "$out/patch.json" <<'JSON'
{
  "machine": {
    "extensions": [
      {
        "name": "heartbeat",
        "command": "/bin/sh",
        "args": ["-c", "while :; do echo \"heartbeat $(date -u +%H:%M:%S)\"; sleep 2; done"]
      }
    ],
    "files": { "allowedRoots": ["/var/log"] }
  }
}
JSON
echo
echo "== keelctl gen config demo 127.0.1.1"
"$keelctl" gen config demo 127.0.1.1 --with-secrets "$out/secrets.json" --config-patch "$out/patch.json" -o "$out"

# The built-in services machined starts (an OS image has them in /usr/libexec/keel).
install -d -m 0755 "$out/libexec"
install -m 0755 "$apid" "$out/libexec/apid"

echo
echo "== machined --root $out/node1 --config $out/controlplane.json --address 127.0.1.1 --libexec $out/libexec"
"$machined" --root "$out/node1" --config "$out/controlplane.json" --address 127.0.1.1 \
  --libexec "$out/libexec" --log-level warn 2>"$out/machined.log" &
node_pid=$!
stop_node() {
  if kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
}
trap stop_node EXIT

# keelctl reaches the node the way an operator does: mTLS 1.3 to apid, with the admin
# client certificate of the generated keelconfig.
k() { "$keelctl" --keelconfig "$out/keelconfig" "$@"; }
for _ in $(seq 1 100); do
  k version >/dev/null 2>&1 && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$out/machined.log" >&2; exit 1; }
  sleep 0.1
done
# Give the heartbeat service time to count as running and to log a line.
sleep 3

echo
echo "== keelctl version"
k version
echo
echo "== keelctl services"
k services
echo
echo "== keelctl logs heartbeat --tail 2"
k logs heartbeat --tail 2
echo
echo "== keelctl -n 127.0.1.1 version   (targets a node by name: the reply says which)"
k -n 127.0.1.1 version
echo
echo "== keelctl logs apid --tail 3   (apid's audit lines: who called what, and the decision)"
k logs apid --tail 3
echo
echo "== keelctl shutdown --yes"
k shutdown --yes
wait "$node_pid"
trap - EXIT
echo
echo "The cluster's files are in $out (secrets.json and controlplane.json hold CA keys: keep them private)."
echo "Start the node again with: $machined --root $out/node1 --address 127.0.1.1 --libexec $out/libexec"
echo "and talk to it with: $keelctl --keelconfig $out/keelconfig services"
