#!/usr/bin/env bash
# Configures and builds one build tree with CMake + Ninja.
# Usage: scripts/build.sh <build-dir> [extra cmake arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
if [[ ! -f $dir/build.ninja ]]; then
  cmake -S . -B "$dir" -G Ninja "$@"
else
  cmake "$dir" "$@" >/dev/null
fi
# Two jobs: the machines this runs on have 2 cores and gRPC translation units are large.
ninja -C "$dir" -j "${KEEL_JOBS:-2}"
