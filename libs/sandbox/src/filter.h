// Compiling a Policy to the BPF program the kernel loads. Internal to the library.
#pragma once

#include <vector>

#include <linux/filter.h>

#include "keel/common/status.h"
#include "keel/sandbox/policy.h"

namespace keel::sandbox::detail {

// Syscalls every allow-list gets without listing them, so no profile can forget them:
// ending the process or a thread, returning from a signal handler, and what free() of
// the library's own buffers may call after the filter is loaded.
inline constexpr const char* kImplicitSyscalls[] = {
    "exit", "exit_group", "rt_sigreturn", "restart_syscall", "brk", "munmap", "madvise",
};

// The program for `policy`: allow-lists kill by default, extension profiles allow by
// default; any syscall from another architecture (int 0x80, x32) kills in both.
Result<std::vector<sock_filter>> compileFilter(const Policy& policy);

}  // namespace keel::sandbox::detail
