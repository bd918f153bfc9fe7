#include "keel/common/heap.h"

#include <catch2/catch_test_macros.hpp>
#include <string>

namespace {

using std::chrono::milliseconds;

constexpr keel::HeapTrimPolicy kPolicy{.work = milliseconds(20), .quiet = milliseconds(10)};

TEST_CASE("trims once work is done and the last period was quiet", "[heap]") {
  CHECK(keel::shouldTrimHeap(kPolicy, milliseconds(500), milliseconds(0)));
  CHECK(keel::shouldTrimHeap(kPolicy, milliseconds(20), milliseconds(9)));
}

TEST_CASE("does not trim while the process is busy", "[heap]") {
  CHECK_FALSE(keel::shouldTrimHeap(kPolicy, milliseconds(500), milliseconds(10)));
  CHECK_FALSE(keel::shouldTrimHeap(kPolicy, milliseconds(500), milliseconds(400)));
}

TEST_CASE("does not trim an idle process again without work since the last trim", "[heap]") {
  CHECK_FALSE(keel::shouldTrimHeap(kPolicy, milliseconds(0), milliseconds(0)));
  CHECK_FALSE(keel::shouldTrimHeap(kPolicy, milliseconds(19), milliseconds(1)));
}

TEST_CASE("the trimmer's thread stops when it is destroyed", "[heap]") {
  // A period far longer than the test: destruction must wake the thread, not wait it out.
  { const keel::IdleHeapTrimmer trimmer(std::chrono::hours(1)); }
  SUCCEED();
}

TEST_CASE("releasing the free heap leaves live allocations intact", "[heap]") {
  std::string kept(1 << 20, 'k');
  { std::string freed(4 << 20, 'f'); }
  keel::releaseFreeHeap();
  CHECK(kept == std::string(1 << 20, 'k'));
}

}  // namespace
