#!/usr/bin/env bash
# Records the system calls a daemon makes while its integration tests run, and compares
# them with the daemon's seccomp profile (services/<daemon>/seccomp.policy).
#
#   scripts/syscall-profile.sh <daemon> <build-dir> [options] [-- test-arguments...]
#
# The whole test binary (<build-dir>/integration-tests/<daemon>_test) runs under
# `strace -f -ff -ttt`, which writes one trace per thread. The tests start the daemon
# themselves, so no hook in the tests is needed: the daemon's processes are found by their
# successful execve of a file named <daemon>, and each thread's lineage (clone, fork, execve)
# is rebuilt from the traces to decide which program every line belongs to.
#
# What counts as the daemon's: the syscalls its seccomp filter sees. A daemon image is a
# successful execve of the daemon binary (a re-exec of the daemon stays the daemon); a
# process it forks belongs to it until that process execs something else. Filters are
# followed the way the kernel applies them:
#   - seccomp(SECCOMP_SET_MODE_FILTER) or prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)
#     without SECCOMP_FILTER_FLAG_TSYNC filters the calling thread only, and whatever it
#     creates afterwards (threads by clone/clone3, processes by fork/vfork/clone);
#     with TSYNC it filters every thread of the process at once;
#   - a thread or process created by an unfiltered thread stays unfiltered;
#   - a filter survives execve: the new image has the filter of the thread that called
#     execve (strace reports an exec by a non-leader thread as `superseded by execve`);
#   - only a filter that a daemon process installs itself is the daemon's profile. A
#     process forked by an unfiltered thread stays uncounted even when it installs a
#     filter of its own (a service's sandbox, applied before its exec).
# What is counted: every syscall of a daemon image's filtered threads, and of the
# processes they fork up to and including their execve. Start-up before the filter,
# threads left unfiltered on purpose and what they fork are not. A daemon that never
# installs a filter has every syscall since its execve counted, which over-reports
# start-up calls; the summary says which case applied.
# A call the filter killed (the thread ends `+++ killed by SIGSYS +++`; the kernel rolls
# the call back, so strace shows it returning its own syscall number, or not returning)
# or trapped (`--- SIGSYS {... si_syscall=...}`) is listed apart as killed by the filter
# and not counted as used: the tests provoke such calls on purpose, and a call the profile
# wrongly refused would fail the integration test itself.
# Argument conditions in the profile (`name: ...`) are not evaluated; the first arguments
# seen for such a syscall are listed so they can be compared by eye.
#
# Profile format: one rule per line, `name` or `name: arg-conditions`; `#` starts a comment.
#
# Exit status: 1 when a syscall was used that the profile lacks;
# 2 on a usage or setup error, or when the test binary failed (coverage is then partial);
# 0 otherwise. Needs strace (Debian package `strace`) and ptrace rights over the tests.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: scripts/syscall-profile.sh <daemon> <build-dir> [options] [-- test-arguments...]
  --policy FILE     profile to compare with (default: services/<daemon>/seccomp.policy)
  --test PATH       test binary to run (default: <build-dir>/integration-tests/<daemon>_test)
  --traces DIR      analyse the strace -ff -ttt output already in DIR (files trace.<tid>)
                    instead of running the tests
  --keep DIR        write the traces to DIR and keep them (default: a temporary directory)
EOF
  exit 2
}

[[ $# -ge 2 ]] || usage
daemon=$1
build_dir=$2
shift 2
[[ $daemon =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "syscall-profile: bad daemon name '$daemon'" >&2; exit 2; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
policy=$repo_root/services/$daemon/seccomp.policy
test_bin=$build_dir/integration-tests/${daemon}_test
traces=""
keep=""
test_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --policy) [[ $# -ge 2 ]] || usage; policy=$2; shift 2 ;;
    --test) [[ $# -ge 2 ]] || usage; test_bin=$2; shift 2 ;;
    --traces) [[ $# -ge 2 ]] || usage; traces=$2; shift 2 ;;
    --keep) [[ $# -ge 2 ]] || usage; keep=$2; shift 2 ;;
    --) shift; test_args=("$@"); break ;;
    *) usage ;;
  esac
done

[[ -f $policy ]] || { echo "syscall-profile: no profile at $policy" >&2; exit 2; }

test_failed=0
temp_traces=0
if [[ -z $traces ]]; then
  command -v strace >/dev/null || { echo "syscall-profile: strace is not installed (Debian package strace)" >&2; exit 2; }
  [[ -x $test_bin ]] || { echo "syscall-profile: no test binary at $test_bin (build it first)" >&2; exit 2; }
  if [[ -n $keep ]]; then
    mkdir -p "$keep"
    traces=$keep
    rm -f "$traces"/trace.*
  else
    traces=$(mktemp -d "${TMPDIR:-/tmp}/syscall-profile.XXXXXX")
    temp_traces=1
    trap 'rm -rf "$traces"' EXIT
  fi
  echo "syscall-profile: running $test_bin under strace (traces in $traces)"
  log=$traces/test-output.txt
  if ! strace -f -ff -qq -ttt -o "$traces/trace" -- "$test_bin" "${test_args[@]}" >"$log" 2>&1; then
    test_failed=1
    echo "syscall-profile: the test binary failed under strace; the profile below covers only what ran" >&2
    tail -n 20 "$log" >&2
  fi
fi

shopt -s nullglob
files=("$traces"/trace.*)
shopt -u nullglob
[[ ${#files[@]} -gt 0 ]] || { echo "syscall-profile: no trace.<tid> files in $traces" >&2; exit 2; }

# Profile rules: "name<TAB>1" when the rule carries argument conditions, "name<TAB>0" otherwise.
rules=$(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$policy" | awk '
  NF == 0 { next }
  {
    name = $0; cond = 0
    i = index(name, ":")
    if (i > 0) { cond = (substr(name, i + 1) ~ /[^[:space:]]/); name = substr(name, 1, i - 1) }
    sub(/[[:space:]]+$/, "", name)
    if (name !~ /^[a-z0-9_]+$/) { printf "syscall-profile: ignoring malformed profile line: %s\n", $0 > "/dev/stderr"; next }
    print name "\t" cond
  }')

# Syscall numbers of this machine ("name=number ..."), to recognise a call seccomp killed:
# the kernel rolls it back, so strace shows it returning its own number. Empty when no C
# preprocessor is at hand; a killed thread's last completed call is then taken instead.
nr_table=$( (printf '#include <sys/syscall.h>\n' | ${CPP:-cpp} -dM 2>/dev/null || true) |
  awk '$1 == "#define" && $2 ~ /^__NR_[a-z0-9_]+$/ && $3 ~ /^[0-9]+$/ {printf "%s=%s ", substr($2, 6), $3}')

# Pass 1 (pass=1) records every thread's clone/fork/execve/seccomp events; pass 2 (pass=2)
# attributes each syscall line to a program image and decides whether the daemon's filter
# covered it. Output lines:
#   used <name> <count> <where>   a syscall a daemon thread made under the daemon's filter,
#                             and the trace file and line of its first occurrence
#   arg <name> <arg0>         first argument seen, for syscalls with conditions in the profile
#   killed <name> <arg0> <n>  a call the daemon's filter killed (or trapped)
#   unidentified <tid>        a daemon process killed by SIGSYS on a call not identified
#   instance <tid> <line> <filtered 0|1> <path>   a daemon image (execve at line of
#                             trace.tid), and whether any of its threads ran under the filter
analysis=$(printf '%s\n' "$rules" | awk -v daemon="$daemon" -v nrs="$nr_table" '
BEGIN {
  n = split(nrs, kv, " ")
  for (i = 1; i <= n; i++) { split(kv[i], nv, "="); nr[nv[1]] = nv[2] }
}
function tidof(f,   i) { i = f; sub(/.*\./, "", i); return i + 0 }
function base(p) { sub(/.*\//, "", p); return p }
function tg(t) { return (t in parent && thr[t]) ? tg(parent[t]) : t }
function retof(l,   r) { if (l !~ / = [^ ]+( .*)?$/) return ""; r = l; sub(/.* = /, "", r); sub(/ .*/, "", r); return r }
function arg0(l,   a) { a = l; sub(/^[a-z0-9_]+\(/, "", a); sub(/[,)].*/, "", a); sub(/ *<unfinished.*/, "", a); return a }
# Index of the last execve of thread t before its line n (0: none).
function lastexec(t, n,   k, best) {
  best = 0
  for (k = 1; k <= nexec[t]; k++) if (execline[t, k] < n) best = k
  return best
}
# The execve that defines the image of thread t at line n: sets OT (the trace holding it)
# and OL (its line) and returns the path, or "" when the lineage reaches the untraced start.
function origin(t, n,   k) {
  k = lastexec(t, n)
  if (k > 0) { OT = t; OL = execline[t, k]; return execpath[t, k] }
  if (t in parent) return origin(parent[t], pline[t])
  OT = 0; OL = 0; return ""
}
# Start of the image of process (thread group) g at time tm: the last execve that a
# non-leader thread made and that replaced g, 0 if none.
function imagestart(g, tm,   k, s) {
  s = 0
  for (k = 1; k <= nexec[g]; k++) if (((g, k) in execfrom) && exectime[g, k] <= tm) s = exectime[g, k]
  return s
}
# Whether a daemon filter covers thread t at its line n (time tm): installed by t itself,
# synchronised onto its process by TSYNC, inherited from the thread that created it, or
# kept across an execve from the thread that made it.
function filtered(t, n, tm,   k, b, from, g, s) {
  b = 0
  for (k = 1; k <= nexec[t]; k++) if (execline[t, k] < n && ((t, k) in execfrom)) b = k
  from = b > 0 ? execline[t, b] : 0
  for (k = 1; k <= ninst[t]; k++) if (instline[t, k] > from && instline[t, k] < n && instdaemon[t, k]) return 1
  g = tg(t)
  s = imagestart(g, tm)
  for (k = 1; k <= ntsync[g]; k++) {
    if (!instdaemon[tsyncthr[g, k], tsyncidx[g, k]] || tsynctime[g, k] > tm || tsynctime[g, k] < s) continue
    if (tsyncthr[g, k] != t || instline[t, tsyncidx[g, k]] < n) return 1
  }
  if (b > 0) return (execfrom[t, b] in pendline) ? filtered(execfrom[t, b], pendline[execfrom[t, b]], exectime[t, b]) : 0
  if (t in parent) return filtered(parent[t], pline[t], ptime[t])
  return 0
}
pass == 0 { split($0, rule, "\t"); conditioned[rule[1]] = rule[2]; next }
{
  t = tidof(FILENAME)
  tm = $1 + 0
  line = $0
  sub(/^[0-9.]+ /, "", line)
}
pass == 1 {
  if (line ~ /^(clone|clone3|fork|vfork)\(/ && match(line, / = [0-9]+$/)) {
    c = substr(line, RSTART + 3) + 0
    if (c > 0) { parent[c] = t; pline[c] = FNR; ptime[c] = tm; thr[c] = (line ~ /CLONE_THREAD/) }
  } else if (line ~ /^execve(at)?\(/) {
    p = line; sub(/^[^"]*"/, "", p); sub(/".*/, "", p)
    if (line ~ / = 0$/) {
      k = ++nexec[t]; execline[t, k] = FNR; exectime[t, k] = tm; execpath[t, k] = p
    } else if (line ~ /<pid changed to [0-9]+ \.\.\.>$/) {
      # A non-leader thread exec`d: the new image goes on in the leader`s trace.
      pendline[t] = FNR; pendpath[t] = p
    } else if (line ~ /<unfinished \.\.\.>$/) {
      unfpath[t] = p
    }
  } else if (line ~ /^\+\+\+ superseded by execve in pid [0-9]+ /) {
    s = line; sub(/^\+\+\+ superseded by execve in pid /, "", s); supby[t] = s + 0
  } else if (line ~ /^<\.\.\. execve(at)? resumed>.* = 0$/) {
    k = ++nexec[t]; execline[t, k] = FNR; exectime[t, k] = tm
    if (t in supby) { execfrom[t, k] = supby[t]; delete supby[t] } else execpath[t, k] = unfpath[t]
  } else if (line ~ /^(seccomp\(SECCOMP_SET_MODE_FILTER, |prctl\(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)/) {
    r = retof(line)
    f = line; sub(/^[a-z]+\([A-Z_]+, /, "", f); sub(/,.*/, "", f)
    tsync = (line ~ /^seccomp/ && f ~ /SECCOMP_FILTER_FLAG_TSYNC([|]|$)/)
    if (r == "0" || (r ~ /^[1-9][0-9]*$/ && f ~ /NEW_LISTENER/ && (!tsync || f ~ /TSYNC_ESRCH/))) {
      k = ++ninst[t]; instline[t, k] = FNR; insttime[t, k] = tm
      if (tsync) { g = tg(t); j = ++ntsync[g]; tsynctime[g, j] = tm; tsyncthr[g, j] = t; tsyncidx[g, j] = k }
    }
  }
  next
}
pass == 2 && !decided {
  # After pass 1: paths of the execs made by non-leader threads, and which filters a
  # daemon process installed itself (not a process it forked, before that one`s exec).
  decided = 1
  for (key in execfrom) execpath[key] = pendpath[execfrom[key]]
  for (key in instline) {
    split(key, kk, SUBSEP); it = kk[1] + 0
    p = origin(it, instline[key])
    instdaemon[key] = (base(p) == daemon && tg(it) == tg(OT))
    if (instdaemon[key]) anyfilter = 1
  }
}
pass == 2 {
  if (line ~ /^---/ || line ~ /^\+\+\+/) {
    if (line ~ /^--- SIGSYS / && line ~ /si_syscall=__NR_/ && (t in lastname) && lastcounted[t]) {
      s = line; sub(/.*si_syscall=__NR_/, "", s); sub(/[^a-z0-9_].*/, "", s)
      if (s == lastname[t]) refuse(t)
    } else if (line ~ /^\+\+\+ killed by SIGSYS/ && (t in lastname) && lastcounted[t]) {
      sigsys[t] = 1; nsigsys[tg(t)]++
    }
    next
  }
  if (line !~ /^[a-z0-9_]+\(/) next
  name = line; sub(/\(.*/, "", name)
  lastname[t] = name; lastret[t] = retof(line); lastarg[t] = arg0(line); lastcounted[t] = 0
  path = origin(t, FNR)
  if (base(path) != daemon) next
  if (!((OT, OL) in seen)) { seen[OT, OL] = 1; instpath[OT, OL] = path }
  if (anyfilter && !filtered(t, FNR, tm)) next
  lastcounted[t] = 1
  if (anyfilter) filteredinst[OT, OL] = 1
  used[name]++
  if (!(name in where)) where[name] = "trace." t " line " FNR
  if (conditioned[name] == 1) argcount[name, lastarg[t]]++
}
# The last counted call of thread t was refused by the filter: move it from used to killed.
function refuse(t,   n) {
  n = lastname[t]
  if (!lastcounted[t]) return
  lastcounted[t] = 0
  used[n]--
  if (conditioned[n] == 1) argcount[n, lastarg[t]]--
  killed[n, lastarg[t]]++
}
END {
  if (anyfilter) print "anyfilter"
  # In a process killed by SIGSYS, the culprit is the thread whose call was rolled back
  # (it returns its own number) or, when a single thread was killed, its last call.
  for (t in sigsys) {
    r = lastret[t]; g = tg(t)
    if ((lastname[t] in nr) ? r == nr[lastname[t]] : (r != "?" && r != "")) { refuse(t); found[g] = 1 }
    else if ((r == "?" || r == "") && nsigsys[g] == 1) { refuse(t); found[g] = 1 }
  }
  for (g in nsigsys) if (!(g in found)) print "unidentified", g
  for (key in seen) { split(key, kk, SUBSEP); print "instance", kk[1], kk[2], ((key in filteredinst) ? 1 : 0), instpath[key] }
  for (n in used) if (used[n] > 0) print "used", n, used[n], where[n]
  for (key in argcount) if (argcount[key] > 0) { split(key, kk, SUBSEP); print "arg", kk[1], kk[2] }
  for (key in killed) { split(key, kk, SUBSEP); print "killed", kk[1], kk[2], killed[key] }
}' pass=0 - pass=1 "${files[@]}" pass=2 "${files[@]}")

instances=$(awk '$1 == "instance"' <<<"$analysis" | sort -k2,2n -k3,3n)
if [[ -z $instances ]]; then
  echo "syscall-profile: no process of the traces exec'd a binary named '$daemon'" >&2
  exit 2
fi
n_instances=$(wc -l <<<"$instances")
n_filtered=$(awk '$4 == 1' <<<"$instances" | wc -l)
echo "syscall-profile: $daemon: $n_instances image(s) traced, re-execs included ($(awk '{print $5}' <<<"$instances" | sort -u | paste -sd' '))"
if ! grep -q '^anyfilter$' <<<"$analysis"; then
  echo "syscall-profile: no image installed a seccomp filter: counting every syscall since exec (start-up included)"
elif [[ $n_filtered -eq $n_instances ]]; then
  echo "syscall-profile: every image ran under its seccomp filter: counting the syscalls made under it"
else
  echo "syscall-profile: $n_filtered of $n_instances images ran under a seccomp filter: counting the syscalls made under it (the others never did)"
fi

profile_names=$(cut -f1 <<<"$rules" | sed '/^$/d' | sort -u)
used_names=$(awk '$1 == "used" {print $2}' <<<"$analysis" | sort -u)
missing=$(comm -23 <(printf '%s\n' "$used_names" | sed '/^$/d') <(printf '%s\n' "$profile_names"))
unobserved=$(comm -13 <(printf '%s\n' "$used_names" | sed '/^$/d') <(printf '%s\n' "$profile_names"))

echo "syscall-profile: $(sed '/^$/d' <<<"$used_names" | wc -l) distinct syscalls counted; profile $policy has $(sed '/^$/d' <<<"$profile_names" | wc -l)"
killed=$(awk '$1 == "killed" {print $2, $3, $4}' <<<"$analysis" | sort)
if [[ -n $killed ]]; then
  echo "killed by the filter (not counted as used; the tests make these calls on purpose):"
  awk '{n[$1] += $3; a[$1] = a[$1] (a[$1] == "" ? "" : ", ") $2}
       END {for (k in n) printf "  %-24s %d call(s); first argument %s\n", k, n[k], a[k]}' <<<"$killed" | sort
fi
unidentified=$(awk '$1 == "unidentified" {print $2}' <<<"$analysis" | sort -n | paste -sd' ')
if [[ -n $unidentified ]]; then
  echo "killed by SIGSYS on a call not identified (process ids; see their threads' traces): $unidentified"
fi
if [[ -n $missing ]]; then
  echo "used but missing from the profile:"
  while read -r n; do
    awk -v n="$n" '$1 == "used" && $2 == n {w = $4; for (i = 5; i <= NF; i++) w = w " " $i; printf "  %-24s %s calls (first in %s)\n", n, $3, w}' <<<"$analysis"
  done <<<"$missing"
fi
args=$(awk '$1 == "arg" {print $2, $3}' <<<"$analysis" | sort -u)
if [[ -n $args ]]; then
  echo "first arguments seen for syscalls with conditions (not checked):"
  awk '{if (++c[$1] <= 8) a[$1] = a[$1] (a[$1] == "" ? "" : ", ") $2} END {for (n in a) printf "  %-24s %s\n", n, a[n]}' <<<"$args" | sort
fi
if [[ -n $unobserved ]]; then
  echo "in the profile but never observed (informational; the tests may not exercise them):"
  sed 's/^/  /' <<<"$unobserved"
fi

if [[ -n $missing ]]; then
  [[ $temp_traces -eq 0 ]] || echo "syscall-profile: rerun with --keep DIR to inspect the traces"
  echo "syscall-profile: FAIL: $(wc -l <<<"$missing") syscall(s) missing from $policy"
  exit 1
fi
if [[ $test_failed -eq 1 ]]; then
  echo "syscall-profile: the profile covers what was used, but the test binary failed"
  exit 2
fi
echo "syscall-profile: OK: every syscall used is in the profile"
