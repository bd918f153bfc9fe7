#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for a few seconds each, starting from
# its seed corpus. Usage: scripts/fuzz-smoke.sh <fuzz-build-dir> [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
seconds=${2:-15}
status=0
shopt -s nullglob
fuzzers=($(find "$dir" -type f -name "fuzz_*" -perm -u+x | sort))
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "fuzz-smoke: no fuzz targets found under $dir" >&2
  exit 1
fi
for f in "${fuzzers[@]}"; do
  [[ -x $f && ! -d $f ]] || continue
  name=$(basename "$f")
  seeds=$(find libs services -type d -path "*/fuzz/corpus/${name#fuzz_}" | head -n1)
  work=$(mktemp -d)
  [[ -n $seeds && -d $seeds ]] && cp -r "$seeds"/. "$work"/
  echo "fuzz-smoke: $name for ${seconds}s"
  if ! "$f" -max_total_time="$seconds" -print_final_stats=0 "$work" >"$work.log" 2>&1; then
    echo "fuzz-smoke: $name FAILED" >&2
    tail -n 40 "$work.log" >&2
    status=1
  else
    grep -E '^#[0-9]+.*DONE' "$work.log" | tail -n1 || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status
