#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds Keel, creates a local cluster of one control
# plane and two workers (each node's machined on its own loopback address, unprivileged,
# under one directory: the workers get their certificates from the control plane's trustd
# with the join token), talks to every node with keelctl over mTLS through apid, and
# destroys the cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
bash scripts/setup.sh
setup_done=$SECONDS
# Only what the demo runs: the daemons, the reference backend and keelctl (the test
# command builds everything, tests included, in the same tree).
KEEL_TARGETS="keelctl machined apid trustd timed" \
  bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_WERROR=ON >/dev/null
build_done=$SECONDS
keelctl=$PWD/build/cmd/keelctl/keelctl
machined=$PWD/build/services/machined/machined

# Run as root, machined starts the nodes' services under accounts of their own, which must
# reach the cluster's folder: every folder above it must be searchable by others. A clone
# under /root (mode 0700) keeps its cluster under /var/tmp instead.
reachable() {
  local dir=$1
  while [[ $dir != / ]]; do
    dir=$(dirname "$dir")
    [[ -e $dir ]] || continue
    (( 0$(stat -c %a "$dir") & 1 )) || return 1
  done
}
stamp=$(date -u +%Y%m%d-%H%M%S)
out=${KEEL_OUT:-$PWD/out/cluster-$stamp}
if [[ -z ${KEEL_OUT:-} && $EUID -eq 0 ]] && ! reachable "$out"; then
  out=/var/tmp/keel-demo/cluster-$stamp
  echo "demo.sh: $PWD is not reachable by the nodes' service accounts; the cluster goes to $out"
fi
mkdir -p "$(dirname "$out")"

# The built-in services machined starts and the backends with their manifests (timed),
# as the build stages them in build/libexec (an OS image has them in /usr/libexec/keel).
libexec=$(mktemp -d)
chmod 755 "$libexec"
cp -R build/libexec/. "$libexec/"

echo "== keelctl cluster create --controlplanes 1 --workers 2 --root $out"
"$keelctl" cluster create --controlplanes 1 --workers 2 --root "$out" --name demo \
  --machined "$machined" --libexec "$libexec"
destroy() { "$keelctl" cluster destroy --root "$out" >/dev/null 2>&1 || true; rm -rf "$libexec"; }
trap destroy EXIT

# keelctl reaches the nodes the way an operator does: mTLS 1.3 to the control plane's
# apid with the admin certificate of the cluster's keelconfig; apid forwards to the
# workers' apid (as os:impersonator).
k() { "$keelctl" --keelconfig "$out/keelconfig" "$@"; }
all=127.0.1.1,127.0.1.2,127.0.1.3

answered=$SECONDS
echo
echo "== keelctl cluster show"
"$keelctl" cluster show --root "$out"
echo
echo "== keelctl -n $all version"
k -n "$all" version
echo
echo "== keelctl -n $all services"
k -n "$all" services
echo
echo "== keelctl -n $all time   (timed, the reference extension: every node's clocks)"
k -n "$all" time
echo
echo "== keelctl call --list   (every API the node routes, found through gRPC reflection)"
k -n 127.0.1.1 call --list
echo
echo "== keelctl logs trustd --tail 4   (the control plane's CA: each worker's certificate)"
k -n 127.0.1.1 logs trustd --tail 4
echo
echo "== keelctl cluster destroy --root $out"
trap - EXIT
"$keelctl" cluster destroy --root "$out"
rm -rf "$libexec"
echo
echo "demo.sh: the cluster answered $((answered - started)) s after the start" \
  "(set-up $((setup_done - started)) s, build $((build_done - setup_done)) s," \
  "cluster $((answered - build_done)) s)"
