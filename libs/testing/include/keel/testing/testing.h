// Helpers for hermetic tests: temporary directories that clean up after themselves,
// and running a real binary with its output captured.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace keel::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct ProcessResult {
  int exitCode = -1;    // exit status, or -1 when killed by a signal
  int signal = 0;       // terminating signal, 0 when it exited
  std::string out;      // stdout
  std::string err;      // stderr
};

struct RunOptions {
  std::optional<std::filesystem::path> workingDirectory;
  std::map<std::string, std::string> extraEnv;  // added to (or overriding) the environment
  std::string stdinData;
  std::chrono::seconds timeout = std::chrono::seconds(60);  // killed (SIGKILL) after this
};

// Runs argv[0] (searched in PATH when it has no '/') with the given arguments and
// waits for it. Never leaves the child running.
ProcessResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// A child process started in the background; killed (SIGKILL) and reaped on destruction
// if still running, so a failing test never leaves it behind.
class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH when it has no '/'); stdout and stderr go to
  // `logPath` (appended) so a failing test can show them; stderr goes to `errPath`
  // instead when one is given.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
               const std::map<std::string, std::string>& extraEnv = {}, const std::filesystem::path& errPath = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  void signal(int sig) const;
  // Waits up to `timeout` for the exit. Returns the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0 && !reaped_; }
  std::string log() const;

 private:
  int pid_ = -1;
  bool reaped_ = false;
  std::filesystem::path logPath_;
};

// Polls `condition` every few milliseconds until it holds or `timeout` passes. For
// waiting on another process, which offers nothing to block on.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

std::string readFile(const std::filesystem::path& path);
void writeFile(const std::filesystem::path& path, const std::string& content);

}  // namespace keel::testing
