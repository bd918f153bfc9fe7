#include "keel/testing/testing.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include "keel/common/status.h"

extern char** environ;

namespace keel::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/keel-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed: " + std::string(errnoText(errno)));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

// argv and the environment (this process's, with `extraEnv` added or overriding) as
// execve wants them, built before fork so the child only calls exec.
class ExecArgs {
 public:
  ExecArgs(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extraEnv) : args_(argv) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry(*e);
      const auto eq = entry.find('=');
      if (eq != std::string::npos && extraEnv.count(entry.substr(0, eq)) != 0) continue;
      env_.push_back(std::move(entry));
    }
    for (const auto& [k, v] : extraEnv) env_.push_back(k + "=" + v);
    for (auto& e : env_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
    for (auto& a : args_) argp_.push_back(a.data());
    argp_.push_back(nullptr);
  }

  // In the child: execs argv[0] (searched in PATH when it has no '/'); never returns.
  [[noreturn]] void execute() {
    if (args_[0].find('/') == std::string::npos) {
      execvpe(argp_[0], argp_.data(), envp_.data());
    } else {
      execve(argp_[0], argp_.data(), envp_.data());
    }
    _exit(127);
  }

 private:
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  std::vector<char*> envp_;
  std::vector<char*> argp_;
};

void setNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

ProcessResult run(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) throw std::invalid_argument("run: empty argv");
  int outPipe[2];
  int errPipe[2];
  int inPipe[2];
  if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0 || pipe2(inPipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }

  ExecArgs exec(argv, options.extraEnv);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(inPipe[0], STDIN_FILENO);
    dup2(outPipe[1], STDOUT_FILENO);
    dup2(errPipe[1], STDERR_FILENO);
    if (options.workingDirectory && chdir(options.workingDirectory->c_str()) != 0) _exit(126);
    exec.execute();
  }
  close(outPipe[1]);
  close(errPipe[1]);
  close(inPipe[0]);

  // Feed stdin (small inputs only), then close it.
  if (!options.stdinData.empty()) {
    const char* p = options.stdinData.data();
    size_t left = options.stdinData.size();
    while (left > 0) {
      const ssize_t n = write(inPipe[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  close(inPipe[1]);

  setNonBlocking(outPipe[0]);
  setNonBlocking(errPipe[0]);
  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool outOpen = true;
  bool errOpen = true;
  bool killed = false;
  char buf[65536];
  while (outOpen || errOpen) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
    fds[0].fd = outOpen ? outPipe[0] : -1;
    fds[1].fd = errOpen ? errPipe[0] : -1;
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        (i == 0 ? outOpen : errOpen) = false;
      }
    }
  }
  close(outPipe[0]);
  close(errPipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (killed) result.err += "\n[killed after timeout]";
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
                           const std::map<std::string, std::string>& extraEnv, const std::filesystem::path& errPath)
    : logPath_(logPath) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  ExecArgs exec(argv, extraEnv);
  const int logFd = open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logFd < 0) throw std::runtime_error("cannot open " + logPath.string());
  int errFd = logFd;
  if (!errPath.empty()) {
    errFd = open(errPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (errFd < 0) {
      close(logFd);
      throw std::runtime_error("cannot open " + errPath.string());
    }
  }
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    dup2(logFd, STDOUT_FILENO);
    dup2(errFd, STDERR_FILENO);
    exec.execute();
  }
  close(logFd);
  if (errFd != logFd) close(errFd);
}

ChildProcess::~ChildProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void ChildProcess::signal(int sig) const {
  if (running()) kill(pid_, sig);
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    usleep(10'000);
  }
}

std::string ChildProcess::log() const {
  std::ifstream in(logPath_);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    usleep(20'000);
  }
  return true;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out << content;
}

}  // namespace keel::testing
