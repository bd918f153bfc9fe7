#!/usr/bin/env bash
# Configures and builds one build tree with CMake + Ninja.
# Usage: [KEEL_TARGETS="a b"] scripts/build.sh <build-dir> [extra cmake arguments...]
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
# KEEL_TARGETS (space-separated) builds only those targets and what they need.
# shellcheck disable=SC2086
ninja -C "$dir" -j "${KEEL_JOBS:-2}" ${KEEL_TARGETS:-}
