#include "keel/supervisor/child_setup.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <fmt/format.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/stat.h>

namespace keel::supervisor {

namespace {

// The record on the status pipe. Fixed size: the parent tells a report from a clean exec
// (EOF with nothing read, the pipe being close-on-exec) by its size.
struct ChildReport {
  int step;
  int error;
  int detail;
};

// Marks every descriptor above stderr close-on-exec. The loop is for kernels without
// CLOSE_RANGE_CLOEXEC (< 5.11); it closes instead, sparing the status pipe, which must
// stay open until exec.
void closeInheritedOnExec(int statusFd) {
  if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
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

std::string describe(const ChildReport& r, const ChildContext& context) {
  const std::string err = errnoText(r.error);
  switch (static_cast<ChildStep>(r.step)) {
    case ChildStep::kSetpgid: return "creating a process group: " + err;
    case ChildStep::kStdin: return "opening /dev/null for stdin: " + err;
    case ChildStep::kDup: return "redirecting stdio: " + err;
    case ChildStep::kChdir:
      return fmt::format("changing to the state directory {}: {}", context.workingDir, err);
    case ChildStep::kChown:
      return "giving the state directory and config to the service's account (never through a link the service "
             "could have made): " + err;
    case ChildStep::kSandbox:
      return fmt::format(
          "confining the service failed at step {}: {}",
          context.sandboxStepName != nullptr ? context.sandboxStepName(r.detail) : std::to_string(r.detail),
          err);
    case ChildStep::kDeathSignal: return "prctl(PR_SET_PDEATHSIG): " + err;
    case ChildStep::kParent: return "machined went away before the service started";
    case ChildStep::kExec: return fmt::format("exec {}: {}", context.program, err);
  }
  return "child setup: " + err;
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

Result<ChildPipes> ChildPipes::open() {
  ChildPipes pipes;
  KEEL_RETURN_IF_ERROR(makePipe(pipes.stdoutRead, pipes.stdoutWrite));
  KEEL_RETURN_IF_ERROR(makePipe(pipes.stderrRead, pipes.stderrWrite));
  KEEL_RETURN_IF_ERROR(makePipe(pipes.statusRead, pipes.statusWrite));
  return pipes;
}

void ChildPipes::closeChildEnds() {
  stdoutWrite.reset();
  stderrWrite.reset();
  statusWrite.reset();
}

void reportChildFailure(int statusFd, ChildStep step, int error, int detail) noexcept {
  const ChildReport report{static_cast<int>(step), error, detail};
  [[maybe_unused]] ssize_t ignored = ::write(statusFd, &report, sizeof report);
  ::_exit(127);
}

int chownOwnedPath(const char* path, uid_t uid, gid_t gid) noexcept {
  // O_PATH opens a directory or a file without reading it; O_NOFOLLOW fails on a link.
  const int fd = ::open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st {};
  int error = 0;
  if (::fstat(fd, &st) != 0) {
    error = errno;
  } else if (S_ISLNK(st.st_mode)) {
    error = ELOOP;
  } else if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    error = EMLINK;
  } else if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0) {
    error = errno;
  }
  ::close(fd);
  return error;
}

void setUpChild(int statusFd, int stdoutFd, int stderrFd, const char* workingDir) noexcept {
  // Default dispositions first, then unblock: a parent blocks every signal around fork so
  // that none of its handlers (Asio's SIGCHLD pipe writer) can run in here.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // KILL/STOP fail: fine
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setpgid(0, 0) != 0) reportChildFailure(statusFd, ChildStep::kSetpgid, errno);
  const int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devNull < 0) reportChildFailure(statusFd, ChildStep::kStdin, errno);
  if (::dup2(devNull, STDIN_FILENO) < 0 || ::dup2(stdoutFd, STDOUT_FILENO) < 0 ||
      ::dup2(stderrFd, STDERR_FILENO) < 0) {
    reportChildFailure(statusFd, ChildStep::kDup, errno);
  }
  if (::chdir(workingDir) != 0) reportChildFailure(statusFd, ChildStep::kChdir, errno);
  closeInheritedOnExec(statusFd);
}

void execChild(int statusFd, char* const* argv, char* const* envp) noexcept {
  ::execve(argv[0], argv, envp);
  reportChildFailure(statusFd, ChildStep::kExec, errno);
}

Status readChildReport(int statusReadFd, const ChildContext& context) {
  ChildReport report{};
  const size_t got = readFully(statusReadFd, &report, sizeof report);
  if (got == 0) return Status::ok();
  if (got != sizeof report) return internalError("child setup: truncated status report");
  const std::string message = describe(report, context);
  if (static_cast<ChildStep>(report.step) == ChildStep::kParent) return unavailable(message);
  return failedPrecondition(message);
}

}  // namespace keel::supervisor
