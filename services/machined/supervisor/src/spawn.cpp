#include "keel/supervisor/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "keel/supervisor/child_setup.h"

namespace keel::supervisor {

namespace {

// Runs in the child between fork and exec: async-signal-safe calls only, no allocation,
// except whatever preExec does (see ServiceSpec::preExec).
[[noreturn]] void runChild(const SpawnRequest& request, char* const* argv, char* const* envp,
                           const ChildPipes& pipes) {
  const int statusFd = pipes.statusWrite.get();
  setUpChild(statusFd, pipes.stdoutWrite.get(), pipes.stderrWrite.get(), request.workingDir.c_str());
  if (request.preExec) {
    try {
      request.preExec();
    } catch (...) {
      reportChildFailure(statusFd, ChildStep::kPreExec, 0);
    }
  }
  execChild(statusFd, argv, envp);
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

  KEEL_ASSIGN_OR_RETURN(ChildPipes pipes, ChildPipes::open());

  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) runChild(request, argv.data(), envp.data(), pipes);
  const int forkError = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) return unavailable("fork: " + errnoText(forkError));

  SpawnedProcess spawned;
  spawned.pid = pid;
  // Also from the parent, so the group exists whichever side runs first; EACCES after
  // the child's exec is expected and harmless (the child did it itself).
  ::setpgid(pid, pid);
  pipes.closeChildEnds();
  spawned.stdoutFd = std::move(pipes.stdoutRead);
  spawned.stderrFd = std::move(pipes.stderrRead);

  const Status setup =
      readChildReport(pipes.statusRead.get(), {request.argv[0], request.workingDir.native()});
  if (!setup.isOk()) spawned.setupError = setup.message();
  return spawned;
}

}  // namespace keel::supervisor
