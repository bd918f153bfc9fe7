// Child processes and /proc readings for keel_bench: starting the daemons it measures,
// stopping them on every exit path, and reading how much CPU they spent.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"

namespace keel::bench {

// A process started by the tool. Its stdout and stderr go to `logPath`; it receives
// SIGTERM if the tool dies first (PR_SET_PDEATHSIG), and the destructor stops it.
// Not thread-safe: owned and driven by one thread.
class ChildProcess {
 public:
  // Forks and execs argv[0] (an absolute path). Errors: INTERNAL when fork fails;
  // an exec failure shows as an early exit with status 127.
  static Result<ChildProcess> start(const std::vector<std::string>& argv,
                                    const std::filesystem::path& logPath);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // True while the process has not been reaped.
  bool running();
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it. Returns its wait
  // status (or -1 when it was already reaped). Idempotent.
  int stop(std::chrono::milliseconds grace);
  // Waits up to `timeout` for the process to exit by itself, then stops it as stop()
  // does. Returns its wait status.
  int waitExit(std::chrono::milliseconds timeout);
  // The last `maxBytes` of its log, for error messages.
  std::string logTail(size_t maxBytes = 2000) const;

 private:
  ChildProcess(pid_t pid, std::filesystem::path logPath) : pid_(pid), logPath_(std::move(logPath)) {}
  pid_t pid_ = -1;
  bool reaped_ = false;
  int waitStatus_ = -1;
  std::filesystem::path logPath_;
};

// utime+stime of a whole process (all its threads) in clock ticks; 0 for a process
// that no longer exists.
uint64_t processCpuTicks(pid_t pid);
// Sum of processCpuTicks over `pids`.
uint64_t processCpuTicks(const std::vector<pid_t>& pids);
// Microseconds per clock tick (sysconf(_SC_CLK_TCK)).
double microsecondsPerTick();

// Every live process whose parent is `parent`.
std::vector<pid_t> childrenOf(pid_t parent);
// Every live descendant of `ancestor` whose command name (/proc/<pid>/comm) is `comm`.
std::vector<pid_t> descendantsNamed(pid_t ancestor, const std::string& comm);
// The Threads: count of /proc/<pid>/status; 0 when unreadable.
int threadCount(pid_t pid);

// A TCP port on `address` that was free a moment ago (bound to port 0, then closed).
// Errors: UNAVAILABLE when no socket can be bound there.
Result<uint16_t> pickFreePort(const std::string& address);
// True when a TCP connection to address:port succeeds.
bool tcpPortAccepts(const std::string& address, uint16_t port);

// The whole content of a small text file; empty when it cannot be read.
std::string readTextFile(const std::filesystem::path& path);

}  // namespace keel::bench
