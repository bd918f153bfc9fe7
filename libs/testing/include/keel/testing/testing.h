// Helpers for hermetic tests: temporary directories that clean up after themselves,
// and running a real binary with its output captured.
#pragma once

#include <chrono>
#include <filesystem>
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

std::string readFile(const std::filesystem::path& path);
void writeFile(const std::filesystem::path& path, const std::string& content);

}  // namespace keel::testing
