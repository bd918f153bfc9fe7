// Making seccomp kills visible: a process killed by its filter dies by SIGSYS and the
// kernel logs an audit record (type=1326) naming the pid and syscall number. These
// helpers turn that into "killed by seccomp: socket" for a supervisor's log.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "keel/common/status.h"

namespace keel::sandbox {

// The native-architecture name of syscall `nr` ("socket"), or "syscall <nr>" if unknown.
std::string describeSyscall(int nr);

// Finds the kernel's seccomp kill record for `pid` in kernel log text (the lines of
// /dev/kmsg or of dmesg) and returns its syscall number; the last record wins. Records of
// the LOG action (sig=0) are not kills and are skipped.
std::optional<int> findSeccompKill(std::string_view kmsgText, pid_t pid);

// Reads every record currently in the kernel ring buffer through /dev/kmsg, one per line.
// Needs CAP_SYSLOG when kernel.dmesg_restrict is 1; UNAVAILABLE when it cannot be opened.
Result<std::string> readKernelLog();

}  // namespace keel::sandbox
