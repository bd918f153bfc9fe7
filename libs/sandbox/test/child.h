// Running test code in a forked child, which is the only place a filter may be loaded:
// the test process itself is never confined. Children report through their exit status.
#pragma once

#include <functional>
#include <string>

namespace keel::sandbox::test {

// Forks, runs `body` in the child and exits with its return value (99 if it throws);
// returns the child's wait status and sets `pid`.
int runInChild(const std::function<int()>& body, int* pid = nullptr);

// Wait status for messages: "exited 0", "killed by SIGSYS (socket)". For SIGSYS the
// syscall comes from the kernel's audit record when /dev/kmsg is readable.
std::string describeWaitStatus(int status, int pid = 0);

// Forks and execs `argv` after `beforeExec` (run in the child); returns the wait status
// and sets `pid`.
int execInChild(const std::function<int()>& beforeExec, const char* const* argv, int* pid = nullptr);

// Text of /proc/self/status read with raw syscalls only, so that it is safe in a
// confined child ("" on failure).
std::string procSelfStatus();

// The value of `key:` in /proc/self/status text, trimmed ("" when absent).
std::string statusField(const std::string& status, const std::string& key);

// True when this build runs under AddressSanitizer.
bool underAsan();

}  // namespace keel::sandbox::test
