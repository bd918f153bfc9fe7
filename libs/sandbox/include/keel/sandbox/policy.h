// Seccomp profiles as reviewed data: the parser for a daemon's `seccomp.policy` file
// (format in libs/sandbox/README.md) and the hard deny list that no profile can lift.
// Parsing is pure: nothing here touches the calling process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::sandbox {

enum class ArgOp {
  kEqual,        // arg == value
  kNotEqual,     // arg != value
  kMaskedEqual,  // (arg & mask) == value
};

// One comparison on a syscall argument, as the kernel sees it (64 bits).
struct ArgCondition {
  unsigned index = 0;  // 0..5
  ArgOp op = ArgOp::kEqual;
  std::uint64_t mask = 0;  // kMaskedEqual only
  std::uint64_t value = 0;

  bool operator==(const ArgCondition&) const = default;
};

// One profile line: the syscall is allowed when every condition holds (none: always).
struct SyscallRule {
  std::string name;
  int number = -1;  // native-architecture syscall number
  std::vector<ArgCondition> conditions;
  int line = 0;  // line in the profile text, for messages
};

// Hard-denied families that a sandbox may still use, for the few daemons whose job they are.
struct DenyExceptions {
  bool allowMount = false;   // mount, umount2, pivot_root, new mount API: machined as PID 1
  bool allowReboot = false;  // reboot: machined as PID 1
  bool allowClock = false;   // settimeofday, clock_settime, adjtimex, clock_adjtime: time extension
};

enum class PolicyKind {
  kAllowList,  // default kill; only `rules` are allowed
  kExtension,  // default allow; the hard deny list kills, AF_PACKET sockets are refused
};

struct Policy {
  PolicyKind kind = PolicyKind::kAllowList;
  std::vector<SyscallRule> rules;  // kAllowList only; lines for one syscall are OR'ed
  DenyExceptions exceptions;       // what this policy was checked against
};

// Parses a profile (one rule per line, `#` comments). Unknown syscalls, syscalls on the
// hard deny list not lifted by `exceptions`, and malformed lines are INVALID_ARGUMENT
// errors naming the line. The result is an allow-list policy carrying `exceptions`.
Result<Policy> parsePolicy(std::string_view text, const DenyExceptions& exceptions = {});

// The built-in profile for children that exec programs whose allow-list is unknowable:
// everything is allowed except the hard deny list (kills) and AF_PACKET sockets (refused
// with EAFNOSUPPORT).
Policy extensionPolicy(const DenyExceptions& exceptions = {});

// The hard deny list as syscall names, minus the families `exceptions` lifts. Some names
// may not exist on every architecture.
std::vector<std::string_view> hardDeniedSyscalls(const DenyExceptions& exceptions = {});

// True when `name` is on the hard deny list and `exceptions` does not lift it.
bool isHardDenied(std::string_view name, const DenyExceptions& exceptions = {});

}  // namespace keel::sandbox
