#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for a few seconds each, starting from
# its checked-in seed corpus (and dictionary, when there is one).
# Usage: scripts/fuzz-smoke.sh <fuzz-build-dir> [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
seconds=${2:-15}
status=0
mapfile -t fuzzers < <(find "$dir" -type f -perm -u+x -name "*fuzz_*" ! -name "*.so" | sort)
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "fuzz-smoke: no fuzz targets found under $dir" >&2
  exit 1
fi
for f in "${fuzzers[@]}"; do
  name=$(basename "$f")
  corpus=${name##*fuzz_}
  seeds=$(find libs services -type d -path "*/fuzz/corpus/$corpus" | head -n1)
  work=$(mktemp -d)
  args=(-max_total_time="$seconds" -print_final_stats=1)
  if [[ -n $seeds ]]; then
    cp -r "$seeds"/. "$work"/
    dict=$(find "$(dirname "$(dirname "$seeds")")" -maxdepth 1 -name "*.dict" | head -n1)
    [[ -n $dict ]] && args+=(-dict="$dict")
  fi
  echo "fuzz-smoke: $name for ${seconds}s"
  if ! "$f" "${args[@]}" "$work" >"$work.log" 2>&1; then
    echo "fuzz-smoke: $name FAILED" >&2
    tail -n 40 "$work.log" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units' "$work.log" | sed "s/^/  $name /" || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status
