// How a Keel daemon keeps its heap from holding memory it no longer uses: fewer glibc
// malloc arenas than the default of eight per CPU, and the heap's free pages handed back
// to the kernel once the process has gone quiet after doing work (start-up, a burst of
// calls). Nothing here runs on a call path.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace keel {

// glibc gives a thread that allocates while another holds its arena a new arena, up to
// eight per CPU; each keeps the memory freed into it. Caps them at kMallocArenas. Call
// first thing in main, before any thread starts (threads pick their arena when they first
// allocate).
inline constexpr int kMallocArenas = 2;
void limitMallocArenas();

// Returns the free pages of every arena to the kernel (glibc's malloc_trim). It holds each
// arena's lock while it walks that arena, so call it when the process is quiet.
void releaseFreeHeap();

// The decision IdleHeapTrimmer makes once a period, from the process's CPU time: trim when
// the process has done at least `work` of CPU time since the last trim (or since it
// started) and used less than `quiet` in the last period. Pure, for tests.
struct HeapTrimPolicy {
  std::chrono::nanoseconds work;
  std::chrono::nanoseconds quiet;
};
[[nodiscard]] bool shouldTrimHeap(const HeapTrimPolicy& policy, std::chrono::nanoseconds sinceTrim,
                                  std::chrono::nanoseconds lastPeriod);

// A thread of its own that wakes every `period`, reads the process's CPU time
// (CLOCK_PROCESS_CPUTIME_ID) and calls releaseFreeHeap() when shouldTrimHeap() says so:
// after start-up, and after each burst of work once it is over. An idle process is trimmed
// again only when its background work (timers, file watches) has added up to `work`.
// Start it after the process is confined (its calls are clock_gettime, futex, prctl to
// name the thread, and the allocator's madvise/munmap/brk). Destruction stops and joins
// the thread.
class IdleHeapTrimmer {
 public:
  static constexpr std::chrono::milliseconds kPeriod{1000};
  static constexpr HeapTrimPolicy kPolicy{.work = std::chrono::milliseconds(20),
                                          .quiet = std::chrono::milliseconds(10)};

  explicit IdleHeapTrimmer(std::chrono::milliseconds period = kPeriod, HeapTrimPolicy policy = kPolicy);
  ~IdleHeapTrimmer();
  IdleHeapTrimmer(const IdleHeapTrimmer&) = delete;
  IdleHeapTrimmer& operator=(const IdleHeapTrimmer&) = delete;

 private:
  void run();

  const std::chrono::milliseconds period_;
  const HeapTrimPolicy policy_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace keel
