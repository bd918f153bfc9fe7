// Starting one service process: the result type every way of spawning returns (the
// supervisor's own fork/exec, or a helper process such as machined's spawner) and the
// in-process fork/exec itself, whose child follows the async-signal-safe rules.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "keel/common/fd_io.h"
#include "keel/common/status.h"

namespace keel::supervisor {

using keel::UniqueFd;

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is the absolute path executed
  std::vector<std::string> env;   // the child's whole environment
  std::filesystem::path workingDir;
  std::function<void()> preExec;  // may be empty
};

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdoutFd;  // read ends, O_CLOEXEC
  UniqueFd stderrFd;
  // Set when the child failed before or at exec ("exec /x: No such file or directory");
  // it has then exited with code 127 and still has to be reaped.
  std::string setupError;
};

// Starts the process: stdin from /dev/null, stdout and stderr to fresh pipes, its own
// process group (pgid == pid), signal dispositions and mask reset, every other fd
// closed, cwd = workingDir, then preExec, then execve. Blocks until the child has exec'd
// or failed, which a CLOEXEC pipe reports. An error means nothing was started (pipe or
// fork failed). Thread-safe.
Result<SpawnedProcess> spawnProcess(const SpawnRequest& request);

// A CLOEXEC pipe whose ends are both above fd 2, so a child's dup2 onto 0-2 never
// clobbers one. Errors: INTERNAL with the failing call.
Status makePipe(UniqueFd& readEnd, UniqueFd& writeEnd);

}  // namespace keel::supervisor
