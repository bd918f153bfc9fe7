#include "keel/sandbox/sandbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "filter.h"
#include "keel/common/status.h"

namespace keel::sandbox {
namespace {

constexpr std::uint64_t bit(int cap) {
  return std::uint64_t{1} << cap;
}

// Highest capability number this kernel knows: PR_CAPBSET_READ fails with EINVAL past it.
int probeLastCap() {
  int last = -1;
  while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) ++last;
  return last;
}

// The calling thread's capability sets, through the raw syscall (libcap is not used).
bool capGet(std::uint64_t& effective, std::uint64_t& permitted, std::uint64_t& inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  auto join = [](std::uint32_t lo, std::uint32_t hi) { return (std::uint64_t{hi} << 32) | lo; };
  effective = join(data[0].effective, data[1].effective);
  permitted = join(data[0].permitted, data[1].permitted);
  inheritable = join(data[0].inheritable, data[1].inheritable);
  return true;
}

// Capabilities applyInChild() would take away from this thread: what it holds in any set
// (the bounding set only when it can be changed, i.e. with CAP_SETPCAP) outside `keep`.
std::uint64_t capabilitiesToDrop(std::uint64_t keep, int lastCap) {
  std::uint64_t eff = 0, prm = 0, inh = 0;
  if (!capGet(eff, prm, inh)) return ~keep;
  std::uint64_t held = eff | prm | inh;
  for (int cap = 0; cap <= lastCap; ++cap) {
    if ((eff & bit(CAP_SETPCAP)) != 0 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) held |= bit(cap);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) held |= bit(cap);
  }
  return held & ~keep;
}

// "Threads:" from /proc/self/status; 0 when it cannot be read.
int threadCount() {
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fd);
  const std::size_t at = text.find("\nThreads:");
  if (at == std::string::npos) return 0;
  return std::atoi(text.c_str() + at + 9);
}

Status stepError(Step step, int err) {
  std::string message = "sandbox step " + std::string(stepName(step)) + " failed: " + errnoText(err) +
                        " (errno " + std::to_string(err) + ")";
  if (err == EPERM || err == EACCES) return permissionDenied(std::move(message));
  return internalError(std::move(message));
}

}  // namespace

std::string_view stepName(Step step) {
  switch (step) {
    case Step::kNone: return "none";
    case Step::kCloseFds: return "close_range";
    case Step::kCoreLimit: return "setrlimit(RLIMIT_CORE)";
    case Step::kDumpable: return "prctl(PR_SET_DUMPABLE)";
    case Step::kBoundingSet: return "prctl(PR_CAPBSET_DROP)";
    case Step::kKeepCaps: return "prctl(PR_SET_KEEPCAPS)";
    case Step::kSetGroups: return "setgroups";
    case Step::kSetGid: return "setresgid";
    case Step::kSetUid: return "setresuid";
    case Step::kCapSet: return "capset";
    case Step::kAmbient: return "prctl(PR_CAP_AMBIENT)";
    case Step::kNoNewPrivs: return "prctl(PR_SET_NO_NEW_PRIVS)";
    case Step::kSeccomp: return "seccomp(SECCOMP_SET_MODE_FILTER)";
  }
  return "unknown";
}

PreparedSandbox::PreparedSandbox() = default;
PreparedSandbox::PreparedSandbox(PreparedSandbox&&) noexcept = default;
PreparedSandbox& PreparedSandbox::operator=(PreparedSandbox&&) noexcept = default;
PreparedSandbox::~PreparedSandbox() = default;

std::size_t PreparedSandbox::filterSize() const noexcept {
  return filter_.size();
}

Result<PreparedSandbox> prepare(const SandboxOptions& options) {
  PreparedSandbox p;
  if (options.uid.has_value() != options.gid.has_value()) {
    return invalidArgument(
        std::string("sandbox options: expected both uid and gid, or neither; found only ") +
        (options.uid ? "uid" : "gid"));
  }
  for (int fd : options.keepFds) {
    if (fd < 0)
      return invalidArgument("sandbox options: expected descriptors >= 0 in keepFds, found " +
                             std::to_string(fd));
    if (fd > 2) p.keepFds_.push_back(fd);
  }
  std::sort(p.keepFds_.begin(), p.keepFds_.end());
  p.keepFds_.erase(std::unique(p.keepFds_.begin(), p.keepFds_.end()), p.keepFds_.end());

  p.lastCap_ = probeLastCap();
  for (int cap : options.keepCapabilities) {
    if (cap < 0 || cap > p.lastCap_) {
      return invalidArgument("sandbox options: expected capabilities 0.." + std::to_string(p.lastCap_) +
                             " (this kernel), found " + std::to_string(cap));
    }
    p.keepCaps_ |= bit(cap);
  }
  p.capsSurviveExec_ = options.capabilitiesSurviveExec;
  p.allThreads_ = options.allThreads;
  p.switchIdentity_ = geteuid() == 0 && options.uid.has_value();
  if (p.switchIdentity_) {
    p.uid_ = *options.uid;
    p.gid_ = *options.gid;
    p.groups_ = options.supplementaryGroups;
  }
  KEEL_ASSIGN_OR_RETURN(p.filter_, detail::compileFilter(options.policy));
  if (p.filter_.size() > BPF_MAXINSNS) {
    return invalidArgument("seccomp filter: expected at most " + std::to_string(BPF_MAXINSNS) +
                           " BPF instructions, the profile compiles to " + std::to_string(p.filter_.size()));
  }
  return p;
}

int PreparedSandbox::applyInChild() noexcept {
  auto fail = [this](Step step) {
    failedStep_ = step;
    return errno != 0 ? errno : EINVAL;
  };

  // (a) Descriptors the parent leaked (a CA key file, another client's socket) must not
  // outlive the privileges that opened them.
  // In per-thread mode the process is already running other threads whose descriptors
  // are not "inherited": the caller closes inherited ones itself first thing in main.
  if (allThreads_) {
    unsigned from = 3;
    for (int fd : keepFds_) {
      const auto keep = static_cast<unsigned>(fd);
      if (keep > from && syscall(SYS_close_range, from, keep - 1, 0) != 0) return fail(Step::kCloseFds);
      from = keep + 1;
    }
    if (syscall(SYS_close_range, from, UINT_MAX, 0) != 0) return fail(Step::kCloseFds);
  }

  // (b) Files a daemon creates hold its secrets unless it says otherwise.
  umask(077);

  // (c) A core dump or ptrace-style access by the same uid would expose keys in memory.
  const rlimit noCore{0, 0};
  if (setrlimit(RLIMIT_CORE, &noCore) != 0) return fail(Step::kCoreLimit);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail(Step::kDumpable);

  // (e, first part) The bounding set is changed while CAP_SETPCAP is still effective:
  // the identity switch below gives it up. Without it (not root) the set is left as is;
  // no_new_privs then keeps exec from granting anything.
  std::uint64_t eff = 0, prm = 0, inh = 0;
  if (!capGet(eff, prm, inh)) return fail(Step::kCapSet);
  if ((eff & bit(CAP_SETPCAP)) != 0) {
    for (int cap = 0; cap <= lastCap_; ++cap) {
      if ((keepCaps_ & bit(cap)) == 0 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
        return fail(Step::kBoundingSet);
    }
  }

  // (d) Groups before gid before uid: each step needs the privilege the next gives up.
  if (switchIdentity_) {
    if (keepCaps_ != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(Step::kKeepCaps);
    if (syscall(SYS_setgroups, groups_.size(), groups_.data()) != 0) return fail(Step::kSetGroups);
    if (syscall(SYS_setresgid, gid_, gid_, gid_) != 0) return fail(Step::kSetGid);
    if (syscall(SYS_setresuid, uid_, uid_, uid_) != 0) return fail(Step::kSetUid);
    if (keepCaps_ != 0 && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return fail(Step::kKeepCaps);
    // A credential change resets dumpable to fs.suid_dumpable, which may be 2.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail(Step::kDumpable);
  }

  // (e) Exactly the kept set stays effective and permitted.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  const std::uint64_t inheritable = capsSurviveExec_ ? keepCaps_ : 0;
  for (int i = 0; i < 2; ++i) {
    data[i].effective = data[i].permitted = static_cast<std::uint32_t>(keepCaps_ >> (32 * i));
    data[i].inheritable = static_cast<std::uint32_t>(inheritable >> (32 * i));
  }
  if (syscall(SYS_capset, &header, data) != 0) return fail(Step::kCapSet);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return fail(Step::kAmbient);
  if (capsSurviveExec_) {
    for (int cap = 0; cap <= lastCap_; ++cap) {
      if ((keepCaps_ & bit(cap)) != 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
        return fail(Step::kAmbient);
      }
    }
  }

  // (f) Required for an unprivileged filter, and stops setuid binaries from undoing all this.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(Step::kNoNewPrivs);

  // (g) TSYNC puts threads started earlier (gRPC's) under the filter too; LOG makes the
  // kernel log every non-allow action, not just kills. Kernels before 4.14 lack LOG.
  sock_fprog program{static_cast<unsigned short>(filter_.size()), filter_.data()};
  const unsigned long tsync = allThreads_ ? SECCOMP_FILTER_FLAG_TSYNC : 0;
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, tsync | SECCOMP_FILTER_FLAG_LOG, &program);
  if (rc < 0 && errno == EINVAL) rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, tsync, &program);
  if (rc > 0) {
    // TSYNC returns the id of a thread it could not synchronise (it has its own filter).
    errno = ESRCH;
    return fail(Step::kSeccomp);
  }
  if (rc < 0) return fail(Step::kSeccomp);
  return 0;
}

Status apply(const SandboxOptions& options) {
  KEEL_ASSIGN_OR_RETURN(PreparedSandbox prepared, prepare(options));
  // In per-thread mode the caller means to confine only itself (see SandboxOptions).
  if (const int threads = threadCount(); threads > 1 && options.allThreads) {
    std::string change;
    if (geteuid() == 0 && options.uid) change = "switch uid/gid";
    if (capabilitiesToDrop(prepared.keepCaps_, prepared.lastCap_) != 0) {
      change += change.empty() ? "drop capabilities" : " and drop capabilities";
    }
    if (!change.empty()) {
      return failedPrecondition("sandbox: expected a single-threaded process to " + change + ", found " +
                                std::to_string(threads) +
                                " threads (credentials are per thread: apply() first in main)");
    }
  }
  if (const int err = prepared.applyInChild(); err != 0) return stepError(prepared.failedStep(), err);
  return Status::ok();
}

Status confineDaemon(std::string_view policyText, std::string_view daemon) {
  auto policy = parsePolicy(policyText);
  if (!policy.ok()) return policy.status().withContext(std::string(daemon) + "'s seccomp.policy");
  SandboxOptions options;
  options.policy = std::move(policy).value();
  options.allThreads = true;
  return apply(options);
}

}  // namespace keel::sandbox
