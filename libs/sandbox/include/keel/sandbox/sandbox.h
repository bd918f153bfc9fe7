// Confining a process: closes inherited descriptors, sets umask 077, disables core
// dumps, switches to a dedicated uid/gid, drops capabilities, sets no_new_privs and loads
// a seccomp filter from the daemon's reviewed profile. See libs/sandbox/README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"
#include "keel/sandbox/policy.h"

struct sock_filter;

namespace keel::sandbox {

struct SandboxOptions {
  // The seccomp profile: parsePolicy() of the daemon's embedded seccomp.policy, or
  // extensionPolicy() for a child that execs an arbitrary program.
  Policy policy;
  // Descriptors above 2 that survive (a listening socket handed down, a status pipe).
  std::vector<int> keepFds;
  // Identity to take when running as root; both or neither. Ignored when not root
  // (the unprivileged local cluster), since there is nothing to give up.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::vector<gid_t> supplementaryGroups;  // replaces every supplementary group
  // Capabilities (CAP_* numbers) kept in the bounding, permitted and effective sets.
  std::vector<int> keepCapabilities;
  // Also raise the kept capabilities as inheritable and ambient, so that a non-root
  // program exec'd after applyInChild() still holds them. Off: both sets end empty.
  bool capabilitiesSurviveExec = false;
  // True: the filter covers every thread of the process (TSYNC). False: only the calling
  // thread and the threads and children it creates later, for a daemon that keeps one
  // thread outside its own filter on purpose (a thread that forks children, which inherit
  // the forking thread's filter and must get their own instead). Identity
  // and capabilities are per thread in either case. False also skips closing inherited
  // descriptors (the other threads own descriptors by then): close them first in main.
  bool allThreads = true;
};

// The steps of applyInChild(), in order, for naming the one that failed.
enum class Step : std::uint8_t {
  kNone,
  kCloseFds,
  kCoreLimit,
  kDumpable,
  kBoundingSet,
  kKeepCaps,
  kSetGroups,
  kSetGid,
  kSetUid,
  kCapSet,
  kAmbient,
  kNoNewPrivs,
  kSeccomp,
};

// "close_range", "setresuid", "seccomp(SECCOMP_SET_MODE_FILTER)", …
std::string_view stepName(Step step);

// Everything apply needs, computed and allocated up front (options checked, filter
// compiled to BPF), so that applying it is syscalls only.
class PreparedSandbox {
 public:
  PreparedSandbox(PreparedSandbox&&) noexcept;
  PreparedSandbox& operator=(PreparedSandbox&&) noexcept;
  ~PreparedSandbox();

  // Confines the calling thread's process; safe between fork() and exec() in a
  // multi-threaded parent (no allocation, no locks). Returns 0, or the errno of the
  // first failing step, which failedStep() then names. Credentials and capabilities are
  // per thread: in a process with other threads use apply(), which refuses that case.
  int applyInChild() noexcept;

  Step failedStep() const noexcept { return failedStep_; }

  // Number of BPF instructions in the compiled filter.
  std::size_t filterSize() const noexcept;

 private:
  friend Result<PreparedSandbox> prepare(const SandboxOptions& options);
  friend Status apply(const SandboxOptions& options);

  PreparedSandbox();

  std::vector<int> keepFds_;  // sorted, unique, all > 2
  bool switchIdentity_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
  std::uint64_t keepCaps_ = 0;
  int lastCap_ = 0;
  bool capsSurviveExec_ = false;
  bool allThreads_ = true;
  std::vector<sock_filter> filter_;
  Step failedStep_ = Step::kNone;
};

// Checks the options and compiles the filter. INVALID_ARGUMENT for bad options (uid
// without gid, unknown capability, a hand-built policy with a hard-denied syscall).
Result<PreparedSandbox> prepare(const SandboxOptions& options);

// Confines the calling process; call first thing in main, before any thread starts.
// Refuses (FAILED_PRECONDITION) when other threads exist and the call would change
// uid/gid or drop capabilities, since that would only reach this thread; the seccomp
// filter itself reaches every thread (TSYNC). A failed step is PERMISSION_DENIED (EPERM)
// or INTERNAL naming the step and errno; the process is then partly confined and
// should exit.
Status apply(const SandboxOptions& options);

// A daemon of Keel confining itself with its reviewed profile (`policyText`, its embedded
// seccomp.policy), on every thread, keeping no capability. `daemon` names it in errors.
Status confineDaemon(std::string_view policyText, std::string_view daemon);

}  // namespace keel::sandbox
