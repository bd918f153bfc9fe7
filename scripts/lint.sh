#!/usr/bin/env bash
# Keeps the helpers Keel has from being written a second time: fails, naming file and
# line, when the C++ sources
#   - call strerror (use keel::errnoText, libs/common/include/keel/common/status.h);
#   - keep a file descriptor in a raw int member (use keel::UniqueFd, keel/common/fd_io.h);
#   - define a trim of their own (use keel::trim, keel/common/text.h);
#   - define errnoText again;
#   - tune malloc outside keel/common/heap.h (use keel::limitMallocArenas, keel::IdleHeapTrimmer);
#   - have a function over 100 lines outside tests (universal-ctags finds them), but the
#     two table-like parsers whose length is their fields;
#   - include, in machined's src/ rooms, a room the room map (docs/architecture.md) does
#     not let it use.
# Exceptions are listed here with their reason, nowhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=(bench cmd integration-tests libs packaging services)
# packaging/image/init/ is the initramfs's static init: it links none of Keel's libraries,
# so it keeps its own errnoText over strerror (init_io.h).
exempt='^(packaging/image/init/[a-z_]+\.(cpp|h)|libs/common/include/keel/common/(fd_io|text|status|heap)\.h|libs/common/src/(status|heap)\.cpp):'

status=0
check() {
  local what=$1 pattern=$2
  local hits
  hits=$(grep -rnE --include='*.cpp' --include='*.h' --include='*.cc' "$pattern" "${dirs[@]}" | grep -vE "$exempt" || true)
  if [[ -n $hits ]]; then
    echo "lint: $what:" >&2
    echo "$hits" >&2
    status=1
  fi
}

check "strerror instead of keel::errnoText" '(^|[^_A-Za-z])(std::)?strerror(_r)?\('
check "a raw int holding a file descriptor as a member instead of keel::UniqueFd" \
  '^[[:space:]]+int [A-Za-z]*([fF]d|FD)[A-Za-z]*_( = -1)?;'
check "a second trim instead of keel::trim" '(std::string_view|std::string) trim\('
check "a second errnoText" 'std::string errnoText\('
check "malloc tuning outside keel/common/heap.h (use keel::limitMallocArenas, keel::IdleHeapTrimmer)" \
  '(^|[^_A-Za-z])(mallopt|malloc_trim)\('

# parseMachineConfig and parseApidConfig read one field per statement, in the order of the
# documented schema: splitting them would scatter the table.
long=$(ctags-universal --c++-kinds=f --fields=+ne --output-format=json --sort=no -R --languages=C++ bench cmd libs packaging services |
  python3 -c '
import json, sys
exempt = {("libs/config/src/machine_config.cpp", "parseMachineConfig"), ("libs/contracts/src/apid_config.cpp", "parseApidConfig")}
for line in sys.stdin:
    tag = json.loads(line)
    path = tag.get("path", "")
    if "end" not in tag or "/test/" in path or "/fuzz/" in path or (path, tag["name"]) in exempt:
        continue
    lines = tag["end"] - tag["line"] + 1
    if lines > 100:
        print("%s:%d: %s is %d lines" % (path, tag["line"], tag["name"], lines))
')
if [[ -n $long ]]; then
  echo "lint: a function over 100 lines (split it):" >&2
  echo "$long" >&2
  status=1
fi

# machined's rooms, and the rooms each may include (each room's README says why).
declare -A may_use=(
  [boot]=""
  [backends]=""
  [trust]=""
  [state]="paths"
  [api]="boot state trust"
  [node]="api backends boot state trust paths"
)
for room in "${!may_use[@]}"; do
  while IFS= read -r hit; do
    [[ -z $hit ]] && continue
    used=$(sed -E 's/.*#include "src\/([a-z_]+)[\/.].*/\1/' <<<"$hit")
    [[ $used == "$room" || " ${may_use[$room]} " == *" $used "* ]] && continue
    echo "lint: machined's room $room may not include $used (docs/architecture.md, Rooms): $hit" >&2
    status=1
  done < <(grep -rnE '#include "src/' "services/machined/src/$room" || true)
done

if [[ $status -eq 0 ]]; then
  echo "lint: no raw strerror, raw fd member, second trim or errnoText, malloc tuning outside heap.h, function over 100 lines, or include against machined's room map"
fi
exit $status
