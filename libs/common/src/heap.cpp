#include "keel/common/heap.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>

namespace keel {

namespace {

std::chrono::nanoseconds processCpuTime() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

void limitMallocArenas() { mallopt(M_ARENA_MAX, kMallocArenas); }

void releaseFreeHeap() { malloc_trim(0); }

bool shouldTrimHeap(const HeapTrimPolicy& policy, std::chrono::nanoseconds sinceTrim,
                    std::chrono::nanoseconds lastPeriod) {
  return sinceTrim >= policy.work && lastPeriod < policy.quiet;
}

IdleHeapTrimmer::IdleHeapTrimmer(std::chrono::milliseconds period, HeapTrimPolicy policy)
    : period_(period), policy_(policy), thread_([this] { run(); }) {}

IdleHeapTrimmer::~IdleHeapTrimmer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void IdleHeapTrimmer::run() {
  pthread_setname_np(pthread_self(), "heap-trim");
  // Start-up counts as work: its garbage (config parsing, TLS set-up) is the first trim.
  auto trimmedAt = std::chrono::nanoseconds(0);
  auto periodStart = processCpuTime();
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
    const auto now = processCpuTime();
    if (shouldTrimHeap(policy_, now - trimmedAt, now - periodStart)) {
      releaseFreeHeap();
      // The trim's own CPU time is not work to trim after.
      trimmedAt = processCpuTime();
    }
    periodStart = processCpuTime();
  }
}

}  // namespace keel
