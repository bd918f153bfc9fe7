#!/usr/bin/env bash
# Fails when a daemon under services/ has no seccomp.policy (or one that does not parse),
# or when README.md's sandbox section differs from what the profiles say.
set -euo pipefail
report=$1
src=$2
status=0
for dir in "$src"/services/*/; do
  [[ -f $dir/main.cpp ]] || continue
  if [[ ! -f $dir/seccomp.policy ]]; then
    echo "$(basename "$dir"): a daemon without services/$(basename "$dir")/seccomp.policy" >&2
    status=1
  fi
done
[[ $status -eq 0 ]] || exit 1
expected=$("$report" "$src")
actual=$(sed -n '/<!-- sandbox-report:begin -->/,/<!-- sandbox-report:end -->/p' "$src/README.md" | sed '1d;$d')
if [[ "$expected" != "$actual" ]]; then
  echo "README.md's sandbox section is out of date; regenerate it with:" >&2
  echo "  $report $src   (and paste between the sandbox-report markers)" >&2
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  exit 1
fi
echo "sandbox report: README.md matches the profiles of $(ls -d "$src"/services/*/main.cpp | wc -l) daemon(s)"
