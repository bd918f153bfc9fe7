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
# What counts as the daemon's:
#   - every thread of a process that exec'd the daemon binary, from that execve on
#     (a re-exec of the daemon stays the daemon);
#   - a process the daemon forks, until that process's own execve succeeds. The code
#     between fork and exec (setpgid, dup2, chdir, the pre-exec sandbox hook, execve itself)
#     is the daemon's code and runs under the daemon's inherited seccomp filter, so the
#     profile must allow it. What the service does after its execve is never counted.
#   - only what runs after the sandbox is in place. When a daemon process is seen
#     installing a seccomp filter (seccomp(SECCOMP_SET_MODE_FILTER) or
#     prctl(PR_SET_SECCOMP)), its syscalls before that point (dynamic loader, libc start-up,
#     flag parsing) are left out, following how filters are inherited: per thread, to
#     threads and children created later, and to all threads at once with
#     SECCOMP_FILTER_FLAG_TSYNC. A daemon that installs no filter has every syscall since
#     its execve counted, which over-reports start-up calls; the summary says which
#     case applied.
# Argument conditions in the profile (`name: ...`) are not evaluated; the first arguments
# seen for such a syscall are listed so they can be compared by eye.
#
# Profile format: one rule per line, `name` or `name: arg-conditions`; `#` starts a comment.
#
# Exit status: 1 when a syscall was used (or killed by seccomp) that the profile lacks;
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
if [[ -z $traces ]]; then
  command -v strace >/dev/null || { echo "syscall-profile: strace is not installed (Debian package strace)" >&2; exit 2; }
  [[ -x $test_bin ]] || { echo "syscall-profile: no test binary at $test_bin (build it first)" >&2; exit 2; }
  if [[ -n $keep ]]; then
    mkdir -p "$keep"
    traces=$keep
    rm -f "$traces"/trace.*
  else
    traces=$(mktemp -d "${TMPDIR:-/tmp}/syscall-profile.XXXXXX")
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

# Pass 1 (pass=1) records every thread's clone/fork/execve/seccomp events; pass 2 (pass=2)
# attributes each syscall line to the program image it ran in. Output lines:
#   used <name> <count>   a syscall the daemon made after its sandbox (or since exec)
#   arg <name> <arg0>     first argument seen, for syscalls with conditions in the profile
#   killed <name>         a daemon thread was killed by seccomp on this syscall
#   instance <tid> <sandboxed 0|1> <path>
analysis=$(printf '%s\n' "$rules" | awk -v daemon="$daemon" '
function tidof(f,   i) { i = f; sub(/.*\./, "", i); return i + 0 }
function base(p) { sub(/.*\//, "", p); return p }
# The execve that defines the image of thread t at line n: sets OT (its thread) and OL (its
# line) and returns the path, or "" when the lineage reaches the untraced start.
function origin(t, n,   k, best) {
  best = 0
  for (k = 1; k <= nexec[t]; k++) if (execline[t, k] < n) best = k
  if (best > 0) { OT = t; OL = execline[t, best]; return execpath[t, best] }
  if (t in parent) return origin(parent[t], pline[t])
  OT = 0; OL = 0; return ""
}
function tg(t) { return (t in parent && thr[t]) ? tg(parent[t]) : t }
# Whether a filter covers thread t at its line n (inherited at clone, or synced by TSYNC).
function sandboxed(t, n, tm,   k, g) {
  for (k = 1; k <= ninst[t]; k++) if (instline[t, k] < n) return 1
  g = tg(t)
  for (k = 1; k <= ntsync[g]; k++) if (tsynctime[g, k] <= tm) return 1
  if (t in parent) return sandboxed(parent[t], pline[t], ptime[t])
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
    parent[c] = t; pline[c] = FNR; ptime[c] = tm; thr[c] = (line ~ /CLONE_THREAD/)
  } else if (line ~ /^execve(at)?\(/ && line ~ / = 0$/) {
    p = line; sub(/^[^"]*"/, "", p); sub(/".*/, "", p)
    k = ++nexec[t]; execline[t, k] = FNR; execpath[t, k] = p
  } else if ((line ~ /^seccomp\(SECCOMP_SET_MODE_FILTER/ || line ~ /^prctl\(PR_SET_SECCOMP, SECCOMP_MODE_FILTER/) && line ~ / = 0$/) {
    k = ++ninst[t]; instline[t, k] = FNR; insttime[t, k] = tm
    if (line ~ /SECCOMP_FILTER_FLAG_TSYNC/) { g = tg(t); k = ++ntsync[g]; tsynctime[g, k] = tm }
  }
  next
}
pass == 2 && FNR == 1 {
  # Decided once, after pass 1: which daemon instances sandbox their own thread group.
  if (!decided) {
    decided = 1
    for (key in instline) {
      split(key, kk, SUBSEP); it = kk[1] + 0
      if (base(origin(it, instline[key])) == daemon && tg(it) == tg(OT)) selfsandboxed[OT] = 1
    }
  }
}
pass == 2 {
  if (line ~ /^---/ || line ~ /^\+\+\+/) {
    if (line ~ /SIGSYS/ && line ~ /si_syscall=__NR_/) {
      if (base(origin(t, FNR)) != daemon) next
      s = line; sub(/.*si_syscall=__NR_/, "", s); sub(/[^a-z0-9_].*/, "", s)
      killed[s] = 1
    }
    next
  }
  if (line !~ /^[a-z0-9_]+\(/) next
  name = line; sub(/\(.*/, "", name)
  path = origin(t, FNR)
  if (base(path) != daemon) next
  root = OT
  if (!(root in seen)) { seen[root] = 1; instpath[root] = path }
  if ((root in selfsandboxed) && !sandboxed(t, FNR, tm)) next
  used[name]++
  if (conditioned[name] == 1) {
    a = line; sub(/^[a-z0-9_]+\(/, "", a); sub(/[,)].*/, "", a)
    if (!((name, a) in argseen) && nargs[name] < 8) { argseen[name, a] = 1; nargs[name]++; print "arg", name, a }
  }
}
END {
  for (r in seen) print "instance", r, ((r in selfsandboxed) ? 1 : 0), instpath[r]
  for (n in used) print "used", n, used[n]
  for (n in killed) print "killed", n
}' pass=0 - pass=1 "${files[@]}" pass=2 "${files[@]}")

instances=$(awk '$1 == "instance"' <<<"$analysis" | sort -k2,2n)
if [[ -z $instances ]]; then
  echo "syscall-profile: no process of the traces exec'd a binary named '$daemon'" >&2
  exit 2
fi
n_instances=$(wc -l <<<"$instances")
n_sandboxed=$(awk '$3 == 1' <<<"$instances" | wc -l)
echo "syscall-profile: $daemon: $n_instances process(es) traced ($(awk '{print $4}' <<<"$instances" | sort -u | paste -sd' '))"
if [[ $n_sandboxed -eq $n_instances ]]; then
  echo "syscall-profile: every instance installed a seccomp filter: counting syscalls made under it"
elif [[ $n_sandboxed -eq 0 ]]; then
  echo "syscall-profile: no instance installed a seccomp filter: counting every syscall since exec (start-up included)"
else
  echo "syscall-profile: $n_sandboxed of $n_instances instances installed a seccomp filter; the others count every syscall since exec"
fi

profile_names=$(cut -f1 <<<"$rules" | sed '/^$/d' | sort -u)
used_names=$(awk '$1 == "used" {print $2}' <<<"$analysis" | sort -u)
killed_names=$(awk '$1 == "killed" {print $2}' <<<"$analysis" | sort -u)
missing=$(comm -23 <(printf '%s\n' "$used_names" "$killed_names" | sed '/^$/d' | sort -u) <(printf '%s\n' "$profile_names"))
unobserved=$(comm -13 <(printf '%s\n' "$used_names" | sed '/^$/d') <(printf '%s\n' "$profile_names"))

echo "syscall-profile: $(sed '/^$/d' <<<"$used_names" | wc -l) distinct syscalls used; profile $policy has $(sed '/^$/d' <<<"$profile_names" | wc -l)"
if [[ -n $killed_names ]]; then
  echo "killed by seccomp (a filter refused them):"
  sed 's/^/  /' <<<"$killed_names"
fi
if [[ -n $missing ]]; then
  echo "used but missing from the profile:"
  while read -r n; do
    count=$(awk -v n="$n" '$1 == "used" && $2 == n {print $3}' <<<"$analysis")
    if [[ -n $count ]]; then printf '  %-24s %s calls\n' "$n" "$count"; else printf '  %-24s killed by seccomp\n' "$n"; fi
  done <<<"$missing"
fi
args=$(awk '$1 == "arg" {print $2, $3}' <<<"$analysis" | sort -u)
if [[ -n $args ]]; then
  echo "first arguments seen for syscalls with conditions (not checked):"
  awk '{a[$1] = a[$1] (a[$1] == "" ? "" : ", ") $2} END {for (n in a) printf "  %-24s %s\n", n, a[n]}' <<<"$args" | sort
fi
if [[ -n $unobserved ]]; then
  echo "in the profile but never observed (informational; the tests may not exercise them):"
  sed 's/^/  /' <<<"$unobserved"
fi

if [[ -n $missing ]]; then
  echo "syscall-profile: FAIL: $(wc -l <<<"$missing") syscall(s) missing from $policy"
  exit 1
fi
if [[ $test_failed -eq 1 ]]; then
  echo "syscall-profile: the profile covers what was used, but the test binary failed"
  exit 2
fi
echo "syscall-profile: OK: every syscall used is in the profile"
