#!/usr/bin/env bash
# compare.sh: this build's call paths against another commit's, figure by figure.
# Builds BASE in a git worktree with the HEAD build's CMake flags, then runs HEAD's
# keel_bench and trustd_bench against each side's daemons in alternating rounds and
# prints HEAD/BASE for every row. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/compare.sh [options] BASE [-- keel_bench options...]

Compares the daemons of HEAD's build tree (the working tree as last built, uncommitted
changes included) with those of BASE, any commit-ish (main, HEAD~1, a tag, a hash).

  1. builds keel_bench and trustd_bench (and so machined, apid, trustd) in HEAD's build
     tree, unless --no-build-head;
  2. checks BASE out in a git worktree, build-compare/base-src (reused: a later run with
     another BASE checks it out there and rebuilds only what changed), configures it with
     HEAD's CMake flags (CMAKE_BUILD_TYPE, compilers and flags, KEEL_* options) and builds
     machined, apid and trustd with ninja -j2, through ccache when it is installed;
  3. runs, round after round, HEAD's keel_bench (--no-nginx) on one side's daemons, then
     on the other's, then HEAD's trustd_bench likewise, HEAD first in odd rounds and
     BASE first in even ones: one load generator for both sides, and the machine's drift
     touches both alike;
  4. prints each figure's median on each side, HEAD/BASE labelled better or worse by the
     metric's direction, and the lowest and highest HEAD/BASE of the rounds' pairs.
     On a shared 2-core machine identical builds differ by 10-30 % on a row; read a
     verdict whose spread includes 1.00 as noise, and use --rounds 5 or more to decide.

Options:
  --rounds N         rounds, each running every benchmark once per side (default 3)
  --duration D       measured time per keel_bench row, and trustd_bench's signing
                     time (default 5s; 500ms, 2s, 1m)
  --smoke            one round of keel_bench --smoke and 1 s of trustd_bench: checks
                     that the comparison runs, says nothing about speed
  --head-build DIR   HEAD's build tree (default: build); BASE gets the same flags
  --no-build-head    use HEAD's binaries as they are, without running ninja there
  --clean            remove the BASE worktree and build-compare/, then exit
  -h, --help         this text

Arguments after -- go to keel_bench as they are (e.g. -- --concurrency 1,32,128).
Each run's per-round JSON and logs are kept in build-compare/last-run/.
The exit status is 0 when every benchmark run succeeded; it does not judge the figures.

Example:
  bench/compare.sh main                       # 3 rounds of 5 s per row: ~4 min once built
  bench/compare.sh --rounds 5 --duration 2s HEAD~1
EOF
}

die() {
  echo "compare.sh: $*" >&2
  exit 2
}

top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$top/build-compare
worktree=$work/base-src
results=$work/last-run

rounds=3
duration=5s
smoke=0
head_build=$top/build
build_head=1
clean=0
base=""
bench_args=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    --duration) duration=${2:?--duration needs a value such as 5s}; shift 2 ;;
    --duration=*) duration=${1#*=}; shift ;;
    --smoke) smoke=1; shift ;;
    --head-build) head_build=${2:?--head-build needs a directory}; shift 2 ;;
    --head-build=*) head_build=${1#*=}; shift ;;
    --no-build-head) build_head=0; shift ;;
    --clean) clean=1; shift ;;
    --) shift; bench_args=("$@"); break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      [[ -z $base ]] || die "one BASE expected, found '$base' and '$1' (keel_bench options go after --)"
      base=$1
      shift
      ;;
  esac
done

if ((clean)); then
  if [[ -e $worktree ]]; then git -C "$top" worktree remove --force "$worktree"; fi
  git -C "$top" worktree prune
  rm -rf "$work"
  echo "removed $work"
  exit 0
fi

[[ -n $base ]] || { usage >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds expects a whole number from 1, found '$rounds'"
[[ $duration =~ ^[0-9]+(\.[0-9]+)?(us|ms|s|m)$ ]] ||
  die "--duration expects a duration such as 5s, 500ms or 1m, found '$duration'"
command -v python3 >/dev/null || die "python3 is needed for the report (apt-get install python3)"
command -v ninja >/dev/null || die "ninja is needed (apt-get install ninja-build)"
if ((smoke)); then rounds=1; fi
# trustd_bench signs for as long as a keel_bench row measures.
trustd_seconds=$(python3 -c '
import sys
n, unit = sys.argv[1], sys.argv[2]
print(float(n) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[unit])' \
  "${duration%%[a-z]*}" "${duration##*[0-9.]}")
if ((smoke)); then trustd_seconds=1; fi

[[ -d $head_build ]] || die "no HEAD build tree at $head_build (scripts/build.sh build, or --head-build DIR)"
head_build=$(cd "$head_build" && pwd)
head_cache=$head_build/CMakeCache.txt
[[ -f $head_cache ]] || die "$head_build has no CMakeCache.txt: not a configured build tree"
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$head_cache" | head -n1; }
head_source=$(cache_get CMAKE_HOME_DIRECTORY)
[[ $head_source -ef $top ]] ||
  die "$head_build was configured from $head_source, not from this checkout ($top)"

base_sha=$(git -C "$top" rev-parse --verify --quiet "$base^{commit}") ||
  die "'$base' is not a commit in $top (a branch, tag, hash or HEAD~N; see git log --oneline)"
head_sha=$(git -C "$top" rev-parse HEAD)
describe() { git -C "$top" log -1 --format='%h %<(60,trunc)%s' "$1"; }
head_label="$(describe HEAD)"
if [[ -n $(git -C "$top" status --porcelain --untracked-files=no) ]]; then
  head_label+="  + uncommitted changes"
fi
base_label="$(describe "$base_sha")"

# BASE's build tree sits in the worktree where HEAD's sits in the checkout (build/ ->
# base-src/build/): with CCACHE_BASEDIR at the checkout, a compile's command line in one
# tree then reads the same as in the other, so ccache serves BASE what HEAD compiled.
rel=$(realpath --relative-to="$top" "$head_build")
if [[ $rel == ..* ]]; then rel=build; fi
base_build=$worktree/$rel

cmake_args=(-G Ninja)
while IFS= read -r line; do
  name=${line%%:*}
  rest=${line#*:}
  type=${rest%%=*}
  value=${rest#*=}
  case $name in
    CMAKE_BUILD_TYPE | CMAKE_C_COMPILER | CMAKE_CXX_COMPILER | CMAKE_C_FLAGS | CMAKE_CXX_FLAGS | \
      CMAKE_EXE_LINKER_FLAGS | CMAKE_SHARED_LINKER_FLAGS | CMAKE_MODULE_LINKER_FLAGS | BUILD_TESTING) ;;
    # Paths (KEEL_LIBEXEC_DIR, KEEL_IMAGE_DIR) name HEAD's tree; BASE keeps its own.
    KEEL_*) [[ $type == BOOL || $type == STRING || $type == UNINITIALIZED ]] || continue ;;
    *) continue ;;
  esac
  cmake_args+=("-D$name:$type=$value")
done < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*:[A-Z]+=' "$head_cache")
head_launcher=$(cache_get CMAKE_CXX_COMPILER_LAUNCHER)
ccache_note="ccache not installed: BASE compiles from scratch"
if command -v ccache >/dev/null; then
  cmake_args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$top
  # Debug info names the compile's directory; without this it is part of the hash and
  # no object is shared between the two trees.
  export CCACHE_NOHASHDIR=true
  ccache_note="ccache, base_dir $top"
  if [[ $head_launcher != *ccache* ]]; then
    ccache_note+="; HEAD's build does not use ccache, so BASE shares nothing with it"
  fi
fi

# Shows the end of a failed step's log and stops.
fail_with_log() {
  echo "compare.sh: $1 failed; the end of $2:" >&2
  tail -n 40 "$2" | sed 's/^/  | /' >&2
  exit 1
}

rm -rf "$results"
mkdir -p "$results"
started=$SECONDS

echo "HEAD  $head_label"
echo "      build tree $head_build"
echo "BASE  $base_label"
echo "      build tree $base_build"
echo "flags ${cmake_args[*]:2}"
echo "      ($ccache_note)"
if [[ $base_sha == "$head_sha" && $head_label != *uncommitted* ]]; then
  echo "note: BASE is HEAD's commit: the ratios show the noise between two builds of the same code"
fi

if ((build_head)); then
  echo "building HEAD: ninja -C $head_build -j2 keel_bench trustd_bench"
  ninja -C "$head_build" -j2 keel_bench trustd_bench >"$results/head-build.log" 2>&1 ||
    fail_with_log "building HEAD" "$results/head-build.log"
fi
keel_bench=$head_build/bench/keel_bench
trustd_bench=$head_build/bench/trustd_bench
for b in "$keel_bench" "$trustd_bench"; do
  [[ -x $b ]] || die "no $b (build it: ninja -C $head_build keel_bench trustd_bench)"
done
"$keel_bench" --help | grep -q -- --json ||
  die "$keel_bench has no --json: build HEAD's bench tools from this checkout"

# The worktree is reused: the same BASE as last time leaves every file as it is (ninja
# then has nothing to do); another BASE is checked out over it and rebuilt incrementally.
if [[ -e $worktree/.git && $(git -C "$worktree" rev-parse --show-toplevel 2>/dev/null) -ef $worktree ]]; then
  if [[ $(git -C "$worktree" rev-parse HEAD) != "$base_sha" ]]; then
    echo "checking out BASE in $worktree"
    git -C "$worktree" checkout --quiet --force --detach "$base_sha"
  fi
else
  [[ ! -e $worktree ]] || die "$worktree exists but is not a git worktree: remove it (bench/compare.sh --clean)"
  git -C "$top" worktree prune
  echo "creating the BASE worktree in $worktree"
  git -C "$top" worktree add --quiet --detach "$worktree" "$base_sha"
fi

build_started=$SECONDS
echo "configuring BASE"
cmake -S "$worktree" -B "$base_build" "${cmake_args[@]}" >"$results/base-configure.log" 2>&1 ||
  fail_with_log "configuring BASE" "$results/base-configure.log"
# What keel_bench takes from --build-dir: machined, and apid and trustd when BASE has them.
targets=()
for t in machined apid trustd; do
  if ninja -C "$base_build" -t query "$t" >/dev/null 2>&1; then
    targets+=("$t")
  else
    # A binary left by an earlier BASE that had the daemon must not stand in for this one.
    rm -f "$base_build/services/$t/$t" "$base_build/libexec/$t"
  fi
done
[[ ${targets[0]:-} == machined ]] || die "BASE ($base_label) has no machined target"
echo "building BASE: ninja -C $base_build -j2 ${targets[*]}"
CCACHE_STATSLOG=$results/base-ccache.log ninja -C "$base_build" -j2 "${targets[@]}" \
  >"$results/base-build.log" 2>&1 || fail_with_log "building BASE" "$results/base-build.log"
build_seconds=$((SECONDS - build_started))
ccache_summary=""
if [[ -s $results/base-ccache.log ]]; then
  ccache_summary=$(CCACHE_STATSLOG=$results/base-ccache.log ccache --show-log-stats 2>/dev/null |
    awk '/^ *Hits:/ {h = $2} /^ *Misses:/ {m = $2} END {if (h != "" || m != "") printf "; ccache %d hits, %d misses", h, m}')
fi
echo "BASE built in ${build_seconds} s${ccache_summary}"

if ((smoke)); then
  keel_args=(--smoke)
else
  keel_args=(--duration "$duration")
fi
failures=0
declare -A gave_up=()
# run_one <tool> <side> <round> <command...>: runs one benchmark, keeps its output and JSON.
run_one() {
  local tool=$1 side=$2 round=$3
  shift 3
  local out=$results/$tool-$side-$round
  local label=${side^^}
  if [[ -n ${gave_up[$tool-$side]:-} ]]; then
    echo "  $label $tool: skipped (it failed without figures in round 1)"
    return
  fi
  local t0=$SECONDS rc=0
  "$@" --json "$out.json" >"$out.txt" 2>&1 || rc=$?
  if ((rc == 130)); then exit 130; fi
  if ((rc != 0)); then
    failures=1
    echo "  $label $tool failed (exit $rc); the end of its output ($out.txt):"
    tail -n 15 "$out.txt" | sed 's/^/    | /'
    if [[ ! -s $out.json && $round == 1 ]]; then gave_up[$tool-$side]=1; fi
  else
    echo "  $label $tool: $((SECONDS - t0)) s"
  fi
  # A path keel_bench could not set up leaves its rows empty on that side; say why.
  grep -E '^(direct|apid) not available: ' "$out.txt" | sed "s/^/    $label /" || true
}

bench_started=$SECONDS
# Other work on the machine moves the figures more than most changes do: show how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before the benchmarks: $load_before ($(nproc) cores)"
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds"
  # Odd rounds run HEAD first, even rounds BASE first: whatever the first slot of a pair
  # gets (a cooler or busier machine) then goes to each side alike.
  if ((r % 2)); then order=(head base); else order=(base head); fi
  for side in "${order[@]}"; do
    if [[ $side == head ]]; then dir=$head_build; else dir=$base_build; fi
    run_one keel_bench "$side" "$r" "$keel_bench" --build-dir "$dir" --no-nginx --rounds 1 \
      "${keel_args[@]}" "${bench_args[@]}"
  done
  for side in "${order[@]}"; do
    if [[ $side == head ]]; then dir=$head_build; else dir=$base_build; fi
    if [[ -x $dir/services/trustd/trustd ]]; then
      run_one trustd_bench "$side" "$r" "$trustd_bench" --trustd "$dir/services/trustd/trustd" \
        --seconds "$trustd_seconds"
    fi
  done
done
bench_seconds=$((SECONDS - bench_started))
echo "load average after the benchmarks: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
python3 "$top/bench/compare_report.py" --results "$results" --rounds "$rounds" \
  --head "$head_label" --base "$base_label"
echo
echo "BASE build ${build_seconds} s, benchmarks ${bench_seconds} s, total $((SECONDS - started)) s;" \
  "per-round output and JSON in $results"
exit "$failures"
