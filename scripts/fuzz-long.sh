#!/usr/bin/env bash
# A long fuzz campaign: runs every libFuzzer target of a fuzz build until it has executed
# a given number of inputs (or for a given time), starting from the corpus kept in the
# repository, and merges what it found back into that corpus (minimized, so the
# repository keeps only inputs that add coverage).
#
# Usage: scripts/fuzz-long.sh <fuzz-build-dir> [--runs N | --seconds S] [--only NAME] [--report FILE]
#   --runs N      executions per fuzzer (default 10000000)
#   --seconds S   stop each fuzzer after S seconds instead
#   --only NAME   run only the fuzzers whose name contains NAME
#   --report FILE append one line per fuzzer to FILE (default fuzz-long-report.tsv)
#
# A fuzzer's corpus lives beside its source: <folder>/fuzz/corpus/<name after "fuzz_">.
# Crashes are kept in <report dir>/crashes/<fuzzer>/ and make the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
[[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
build=${1%/}
shift
runs=10000000
seconds=""
only=""
report=fuzz-long-report.tsv
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz-long: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ -d $build ]] || { echo "fuzz-long: no build directory '$build'" >&2; exit 2; }

mapfile -t fuzzers < <(find "$build" -type f -perm -u+x -name "*fuzz_*" ! -name "*.so" | sort)
[[ ${#fuzzers[@]} -gt 0 ]] || { echo "fuzz-long: no fuzz targets under $build" >&2; exit 1; }

# The source folder of a target: its build folder relative to the build, without a
# trailing /fuzz, then fuzz/corpus/<suffix>.
corpus_of() {
  local rel=${1#"$build"/}
  rel=$(dirname "$rel")
  rel=${rel%/fuzz}
  local name
  name=$(basename "$1")
  echo "$rel/fuzz/corpus/${name##*fuzz_}"
}

crashes_root=$(dirname "$(realpath -m "$report")")/crashes
[[ -s $report ]] || printf 'fuzzer\texecutions\tseconds\texecs_per_s\tcorpus_files\tcoverage\tresult\n' >"$report"
status=0
for f in "${fuzzers[@]}"; do
  name=$(basename "$f")
  [[ -z $only || $name == *"$only"* ]] || continue
  corpus=$(corpus_of "$f")
  mkdir -p "$corpus"
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/
  crashes=$crashes_root/$name
  mkdir -p "$crashes"
  args=(-print_final_stats=1 -artifact_prefix="$crashes/")
  if [[ -n $seconds ]]; then args+=(-max_total_time="$seconds"); else args+=(-runs="$runs"); fi
  dict=$(find "$(dirname "$corpus")/.." -maxdepth 1 -name "*.dict" | head -n1)
  [[ -n $dict ]] && args+=(-dict="$dict")
  echo "fuzz-long: $name (corpus $corpus)"
  start=$(date +%s)
  result=ok
  if ! "$f" "${args[@]}" "$work" >"$work.log" 2>&1; then
    # SIGINT (^C) ends a run early without a finding: keep what it found.
    if grep -q 'run interrupted' "$work.log"; then result=interrupted; else result=CRASH; status=1; fi
  fi
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+' "$work.log" | tail -n1 | cut -d' ' -f2)
  if [[ $result != CRASH ]]; then
    # Keep only the inputs that add coverage to what the repository already holds.
    "$f" -merge=1 "$corpus" "$work" >"$work.merge.log" 2>&1 || true
  else
    tail -n 40 "$work.log" >&2
  fi
  files=$(find "$corpus" -type f | wc -l)
  rate=$(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${execs:-0}" "$elapsed" "$rate" "$files" "${cov:-?}" "$result" | tee -a "$report"
  rm -rf "$work" "$work.log" "$work.merge.log"
  rmdir "$crashes" 2>/dev/null || true
done
exit $status
