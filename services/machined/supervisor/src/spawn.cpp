#include "spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>
#include <linux/close_range.h>
#include <sys/resource.h>

#include "keel/common/fd_io.h"

namespace keel::supervisor {

namespace {

// What the child reports through the status pipe when a step fails.
enum class ChildStep : int { kStdin = 1, kDup, kSetpgid, kChdir, kCloseFds, kPreExec, kExec };

struct ChildReport {
  int step;
  int error;
};

std::string_view stepName(int step) {
  switch (static_cast<ChildStep>(step)) {
    case ChildStep::kStdin: return "opening /dev/null for stdin";
    case ChildStep::kDup: return "redirecting stdio";
    case ChildStep::kSetpgid: return "creating a process group";
    case ChildStep::kChdir: return "changing to the state directory";
    case ChildStep::kCloseFds: return "closing inherited file descriptors";
    case ChildStep::kPreExec: return "the pre-exec hook (it threw)";
    case ChildStep::kExec: return "exec";
  }
  return "child setup";
}



// Runs in the child between fork and exec: async-signal-safe calls only, no allocation.
[[noreturn]] void childReport(int statusFd, ChildStep step, int error) {
  const ChildReport report{static_cast<int>(step), error};
  ssize_t ignored = ::write(statusFd, &report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void runChild(const SpawnRequest& request, char* const* argv, char* const* envp, int stdoutFd,
                           int stderrFd, int statusFd) {
  // Default dispositions first, then unblock: the parent blocked everything around fork
  // so that no handler of the parent (Asio's SIGCHLD pipe writer) can run in here.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // KILL/STOP fail: fine
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setpgid(0, 0) != 0) childReport(statusFd, ChildStep::kSetpgid, errno);
  const int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devNull < 0) childReport(statusFd, ChildStep::kStdin, errno);
  if (::dup2(devNull, STDIN_FILENO) < 0 || ::dup2(stdoutFd, STDOUT_FILENO) < 0 ||
      ::dup2(stderrFd, STDERR_FILENO) < 0) {
    childReport(statusFd, ChildStep::kDup, errno);
  }
  if (::chdir(request.workingDir.c_str()) != 0) childReport(statusFd, ChildStep::kChdir, errno);

  // Everything above stderr becomes close-on-exec, the status pipe included, which must
  // stay open until exec. Fallback for kernels without CLOSE_RANGE_CLOEXEC (< 5.11).
  if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit limit {};
    int maxFd = 65536;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < 1024 * 1024) {
      maxFd = static_cast<int>(limit.rlim_cur);
    }
    for (int fd = STDERR_FILENO + 1; fd < maxFd; ++fd) {
      if (fd != statusFd) ::close(fd);
    }
  }

  if (request.preExec) {
    try {
      request.preExec();
    } catch (...) {
      childReport(statusFd, ChildStep::kPreExec, 0);
    }
  }
  ::execve(argv[0], argv, envp);
  childReport(statusFd, ChildStep::kExec, errno);
}

}  // namespace

Status makePipe(UniqueFd& readEnd, UniqueFd& writeEnd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return internalError("pipe2: " + errnoText(errno));
  for (int& fd : fds) {
    if (fd <= STDERR_FILENO) {
      const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
      const int error = errno;
      ::close(fd);
      if (moved < 0) {
        ::close(fds[0] == fd ? fds[1] : fds[0]);
        return internalError("fcntl(F_DUPFD_CLOEXEC): " + errnoText(error));
      }
      fd = moved;
    }
  }
  readEnd = UniqueFd(fds[0]);
  writeEnd = UniqueFd(fds[1]);
  return Status::ok();
}

Result<SpawnedProcess> spawnProcess(const SpawnRequest& request) {
  if (request.argv.empty()) return invalidArgument("spawn: expected a non-empty argv, found none");

  // Everything the child needs is built before fork: it may not allocate afterwards.
  std::vector<std::string> args = request.argv;
  std::vector<std::string> env = request.env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  SpawnedProcess spawned;
  UniqueFd outWrite;
  UniqueFd errWrite;
  UniqueFd statusRead;
  UniqueFd statusWrite;
  KEEL_RETURN_IF_ERROR(makePipe(spawned.stdoutFd, outWrite));
  KEEL_RETURN_IF_ERROR(makePipe(spawned.stderrFd, errWrite));
  KEEL_RETURN_IF_ERROR(makePipe(statusRead, statusWrite));

  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0)
    runChild(request, argv.data(), envp.data(), outWrite.get(), errWrite.get(), statusWrite.get());
  const int forkError = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) return unavailable("fork: " + errnoText(forkError));

  spawned.pid = pid;
  // Also from the parent, so the group exists whichever side runs first; EACCES after
  // the child's exec is expected and harmless (the child did it itself).
  ::setpgid(pid, pid);
  outWrite.reset();
  errWrite.reset();
  statusWrite.reset();

  ChildReport report{};
  const size_t got = readFully(statusRead.get(), &report, sizeof report);
  if (got == sizeof report) {
    const auto step = static_cast<ChildStep>(report.step);
    if (step == ChildStep::kExec) {
      spawned.setupError = fmt::format("exec {}: {}", request.argv[0], errnoText(report.error));
    } else if (step == ChildStep::kChdir) {
      spawned.setupError = fmt::format("{} {}: {}", stepName(report.step), request.workingDir.string(),
                                       errnoText(report.error));
    } else if (step == ChildStep::kPreExec) {
      spawned.setupError = std::string(stepName(report.step));
    } else {
      spawned.setupError = fmt::format("{}: {}", stepName(report.step), errnoText(report.error));
    }
  } else if (got != 0) {
    spawned.setupError = "child setup: truncated status report";
  }
  return spawned;
}

}  // namespace keel::supervisor
