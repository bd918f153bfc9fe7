// The setup of a service process between fork and exec, as the spawner does it: the
// steps, the failure report the child writes to a close-on-exec status pipe, and the
// parent's reading of it. The lowest layer of the supervisor library: it uses none of it.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "keel/common/fd_io.h"
#include "keel/common/status.h"

namespace keel::supervisor {

// The steps a child may fail at, in the order they run. Only one binary writes and reads
// a report (the pipe never crosses an exec), so the values are not a stable format.
enum class ChildStep : int {
  kSetpgid = 1,
  kStdin,
  kDup,
  kChdir,
  kChown,        // the state directory handed to the service's account
  kSandbox,      // the confinement; `detail` names its step
  kDeathSignal,  // PR_SET_PDEATHSIG
  kParent,       // machined went away before exec
  kExec,
};

// A CLOEXEC pipe whose ends are both above fd 2, so a child's dup2 onto 0-2 never
// clobbers one. Errors: INTERNAL with the failing call.
Status makePipe(UniqueFd& readEnd, UniqueFd& writeEnd);

// The pipes between a parent and the child it is about to fork. The parent keeps the
// read ends; the child's output pipes become its stdout and stderr.
struct ChildPipes {
  UniqueFd stdoutRead;
  UniqueFd stdoutWrite;
  UniqueFd stderrRead;
  UniqueFd stderrWrite;
  UniqueFd statusRead;
  UniqueFd statusWrite;

  // All ends CLOEXEC and above fd 2 (makePipe). INTERNAL with the failing call.
  static Result<ChildPipes> open();

  // In the parent after fork: without this, the status pipe would never reach EOF and
  // the output pipes would never end.
  void closeChildEnds();
};

// ---- in the child, between fork and exec ----
// Async-signal-safe: system calls only, no allocation, no locks, so that they may run in
// the child of a multi-threaded parent. Each failure writes a report and _exits with 127.

// Writes the report of `step` (with its errno, 0 when there is none, and for kSandbox the
// sandbox step) to `statusFd` and ends the child with exit code 127.
[[noreturn]] void reportChildFailure(int statusFd, ChildStep step, int error, int detail = 0) noexcept;

// The steps every service process takes: default signal dispositions and an empty signal
// mask, its own process group, stdin from /dev/null, stdout and stderr onto the given
// descriptors, `workingDir` as cwd, and every descriptor above 2 close-on-exec (the status
// pipe thus stays open until exec).
void setUpChild(int statusFd, int stdoutFd, int stderrFd, const char* workingDir) noexcept;

// Gives `path` to uid:gid without following a symbolic link at it (the path lies in a
// directory the service itself can write, where it may have planted one) and refusing a
// second hard link to a file (which could be someone else's): 0, or the errno (ELOOP for
// a symbolic link, EMLINK for a hard link, ENOENT, …).
int chownOwnedPath(const char* path, uid_t uid, gid_t gid) noexcept;

// execve(argv[0], argv, envp), or the report of its failure.
[[noreturn]] void execChild(int statusFd, char* const* argv, char* const* envp) noexcept;

// ---- in the parent ----

// What the parent knows to name a failed step.
struct ChildContext {
  std::string_view program;     // argv[0], for kExec
  std::string_view workingDir;  // for kChdir
  // For kSandbox: the name of the sandbox step in `detail`. Null: the number.
  std::string_view (*sandboxStepName)(int detail) = nullptr;
};

// Blocks until the child has exec'd or failed (every write end of the status pipe is
// closed) and turns its report into a Status: OK when it exec'd, otherwise
// FAILED_PRECONDITION naming the step and errno ("exec /x: No such file or directory",
// "changing to the state directory /d: Permission denied"), UNAVAILABLE when machined
// went away first, INTERNAL for a truncated report.
Status readChildReport(int statusReadFd, const ChildContext& context);

}  // namespace keel::supervisor
