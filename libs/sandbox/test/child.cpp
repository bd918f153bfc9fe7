#include "child.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include <sys/wait.h>

#include "keel/sandbox/diagnostics.h"

namespace keel::sandbox::test {
namespace {

int waitFor(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace

int runInChild(const std::function<int()>& body, int* pidOut) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
    }
    // _exit: no atexit handlers, so no LeakSanitizer (which needs ptrace) in children.
    _exit(code);
  }
  if (pidOut != nullptr) *pidOut = pid;
  return waitFor(pid);
}

int execInChild(const std::function<int()>& beforeExec, const char* const* argv, int* pidOut) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (const int code = beforeExec(); code != 0) _exit(code);
    execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  if (pidOut != nullptr) *pidOut = pid;
  return waitFor(pid);
}

std::string describeWaitStatus(int status, int pid) {
  if (status == -1) return "wait failed";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (!WIFSIGNALED(status)) return "status " + std::to_string(status);
  std::string text = std::string("killed by ") + sigabbrev_np(WTERMSIG(status));
  if (WTERMSIG(status) == SIGSYS && pid > 0) {
    if (auto log = readKernelLog(); log.ok()) {
      if (auto nr = findSeccompKill(*log, pid)) text += " (" + describeSyscall(*nr) + ")";
    }
  }
  return text;
}

std::string procSelfStatus() {
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char buf[1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return text;
}

std::string statusField(const std::string& status, const std::string& key) {
  const std::string needle = "\n" + key + ":";
  const std::size_t at = status.find(needle);
  if (at == std::string::npos) return {};
  std::size_t begin = at + needle.size();
  while (begin < status.size() && (status[begin] == ' ' || status[begin] == '\t')) ++begin;
  return status.substr(begin, status.find('\n', begin) - begin);
}

bool underAsan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

}  // namespace keel::sandbox::test
