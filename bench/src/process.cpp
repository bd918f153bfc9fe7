#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "keel/common/status.h"

namespace keel::bench {

Result<ChildProcess> ChildProcess::start(const std::vector<std::string>& argv,
                                         const std::filesystem::path& logPath) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed (gRPC's threads may exist already).
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  const std::string log = logPath.string();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return internalError(std::string("fork: ") + errnoText(errno));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(126);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) _exit(126);
    const int devNull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devNull < 0 || dup2(devNull, STDIN_FILENO) < 0) _exit(126);
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execv(args[0], args.data());
    _exit(127);
  }
  return ChildProcess(pid, logPath);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      reaped_(other.reaped_),
      waitStatus_(other.waitStatus_),
      logPath_(std::move(other.logPath_)) {
  other.pid_ = -1;
  other.reaped_ = true;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) stop(std::chrono::seconds(15));
}

bool ChildProcess::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    waitStatus_ = status;
    return false;
  }
  return true;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (reaped_) return waitStatus_;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) return waitStatus_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  waitStatus_ = status;
  return status;
}

int ChildProcess::waitExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return stop(std::chrono::seconds(1));
}

std::string ChildProcess::logTail(size_t maxBytes) const {
  const std::string all = readTextFile(logPath_);
  return all.size() <= maxBytes ? all : all.substr(all.size() - maxBytes);
}

std::string readTextFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

namespace {

// The fields of /proc/<pid>/stat after the command name, which may itself hold spaces
// and parentheses: everything after the last ')'. Field 3 (state) is index 0.
std::vector<std::string> statFields(pid_t pid) {
  const std::string stat = readTextFile("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream in(stat.substr(close + 1));
  std::vector<std::string> fields;
  std::string f;
  while (in >> f) fields.push_back(f);
  return fields;
}

std::map<pid_t, pid_t> parentMap() {
  std::map<pid_t, pid_t> parents;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const auto fields = statFields(pid);
    if (fields.size() > 1) parents[pid] = static_cast<pid_t>(std::stol(fields[1]));
  }
  return parents;
}

}  // namespace

uint64_t processCpuTicks(pid_t pid) {
  // utime and stime are fields 14 and 15 of stat(5), indices 11 and 12 here.
  const auto fields = statFields(pid);
  if (fields.size() < 13) return 0;
  return std::stoull(fields[11]) + std::stoull(fields[12]);
}

uint64_t processCpuTicks(const std::vector<pid_t>& pids) {
  uint64_t sum = 0;
  for (const pid_t p : pids) sum += processCpuTicks(p);
  return sum;
}

double microsecondsPerTick() {
  return 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parentMap()) {
    if (ppid == parent) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> descendantsNamed(pid_t ancestor, const std::string& comm) {
  const auto parents = parentMap();
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parents) {
    bool below = false;
    for (pid_t p = ppid; p > 1;) {
      if (p == ancestor) {
        below = true;
        break;
      }
      const auto it = parents.find(p);
      if (it == parents.end()) break;
      p = it->second;
    }
    if (!below) continue;
    std::string name = readTextFile("/proc/" + std::to_string(pid) + "/comm");
    while (!name.empty() && name.back() == '\n') name.pop_back();
    if (name == comm) out.push_back(pid);
  }
  return out;
}

int threadCount(pid_t pid) {
  std::istringstream in(readTextFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return 0;
}

namespace {

Result<sockaddr_in> ipv4Address(const std::string& address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    return invalidArgument("expected an IPv4 address on 127.0.0.0/8, found '" + address + "'");
  }
  return sa;
}

}  // namespace

Result<uint16_t> pickFreePort(const std::string& address) {
  KEEL_ASSIGN_OR_RETURN(sockaddr_in sa, ipv4Address(address, 0));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable(std::string("socket: ") + errnoText(errno));
  socklen_t len = sizeof sa;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    const std::string err = errnoText(errno);
    close(fd);
    return unavailable("cannot bind a port on " + address + ": " + err);
  }
  close(fd);
  return ntohs(sa.sin_port);
}

bool tcpPortAccepts(const std::string& address, uint16_t port) {
  auto sa = ipv4Address(address, port);
  if (!sa.ok()) return false;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&sa.value()), sizeof(sockaddr_in)) == 0;
  close(fd);
  return ok;
}

}  // namespace keel::bench
