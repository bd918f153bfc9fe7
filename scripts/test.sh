#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test:
#   0. scripts/lint.sh (one copy of each shared helper),
#   1. the main build (warnings are errors) and its whole test suite,
#   2. an ASan+UBSan build and the same suite,
#   3. a clang build of the libFuzzer targets, each run briefly as a smoke.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

export CTEST_OUTPUT_ON_FAILURE=1
failed=0

echo "=== lint"
bash scripts/lint.sh || failed=1

echo "=== fuzz build (clang, libFuzzer) and smoke runs"
CC=clang-14 CXX=clang++-14 bash scripts/build.sh build-fuzz -DKEEL_PKI_ONLY=ON -DKEEL_FUZZ=ON \
  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
bash scripts/fuzz-smoke.sh build-fuzz "${KEEL_FUZZ_SECONDS:-15}" || failed=1

echo "=== sanitizer build (ASan + UBSan)"
bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Sanitize -DKEEL_WERROR=ON
# The OS image is built and booted once, from the main build (label "image").
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j2 --timeout 600 -LE image || failed=1

echo "=== main build"
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_WERROR=ON
ctest --test-dir build -j2 --timeout 600 || failed=1

exit $failed
