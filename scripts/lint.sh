#!/usr/bin/env bash
# Keeps the helpers Keel has from being written a second time: fails, naming file and
# line, when the C++ sources
#   - call strerror (use keel::errnoText, libs/common/include/keel/common/status.h);
#   - keep a file descriptor in a raw int member (use keel::UniqueFd, keel/common/fd_io.h);
#   - define a trim of their own (use keel::trim, keel/common/text.h);
#   - define errnoText again;
#   - tune malloc outside keel/common/heap.h (use keel::limitMallocArenas, keel::IdleHeapTrimmer).
# Exceptions are listed here with their reason, nowhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=(bench cmd integration-tests libs packaging services)
# packaging/image/init/keel_init.cpp is the initramfs's static init: it links none of
# Keel's libraries, so it keeps its own errnoText over strerror.
exempt='^(packaging/image/init/keel_init\.cpp|libs/common/include/keel/common/(fd_io|text|status|heap)\.h|libs/common/src/(status|heap)\.cpp):'

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

if [[ $status -eq 0 ]]; then
  echo "lint: no raw strerror, raw fd member, second trim or errnoText, or malloc tuning outside heap.h"
fi
exit $status
