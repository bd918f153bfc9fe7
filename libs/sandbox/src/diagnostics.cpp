#include "keel/sandbox/diagnostics.h"

#include <fcntl.h>
#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include "keel/common/status.h"

namespace keel::sandbox {
namespace {

// The value of ` key=` in an audit record line, up to the next space.
std::optional<std::string_view> field(std::string_view line, std::string_view key) {
  std::size_t at = 0;
  while ((at = line.find(key, at)) != std::string_view::npos) {
    // Whole keys only: "pid=" must not match inside "ppid=".
    if ((at == 0 || line[at - 1] == ' ') && line.substr(at + key.size(), 1) == "=") {
      std::string_view value = line.substr(at + key.size() + 1);
      return value.substr(0, value.find(' '));
    }
    at += key.size();
  }
  return std::nullopt;
}

template <typename T>
std::optional<T> number(std::optional<std::string_view> text) {
  if (!text || text->empty()) return std::nullopt;
  T v{};
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return v;
}

}  // namespace

std::string describeSyscall(int nr) {
  std::unique_ptr<char, decltype(&std::free)> name(seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr),
                                                   &std::free);
  if (name == nullptr) return "syscall " + std::to_string(nr);
  return name.get();
}

std::optional<int> findSeccompKill(std::string_view kmsgText, pid_t pid) {
  std::optional<int> found;
  while (!kmsgText.empty()) {
    const std::size_t nl = kmsgText.find('\n');
    const std::string_view line = kmsgText.substr(0, nl);
    kmsgText.remove_prefix(nl == std::string_view::npos ? kmsgText.size() : nl + 1);
    // AUDIT_SECCOMP is record type 1326.
    if (line.find("type=1326 ") == std::string_view::npos) continue;
    if (number<pid_t>(field(line, "pid")) != pid) continue;
    const auto sig = number<int>(field(line, "sig"));
    if (!sig || *sig == 0) continue;  // SECCOMP_RET_LOG: the call was allowed
    if (const auto nr = number<int>(field(line, "syscall"))) found = nr;
  }
  return found;
}

Result<std::string> readKernelLog() {
  const int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return unavailable(std::string("reading /dev/kmsg: ") + errnoText(errno));
  std::string text;
  char record[8192];  // one read returns one record, and records are at most ~1 KiB
  for (;;) {
    const ssize_t n = read(fd, record, sizeof record);
    if (n > 0) {
      text.append(record, static_cast<std::size_t>(n));
      if (text.back() != '\n') text.push_back('\n');
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EPIPE: records were overwritten while reading; the next read resumes after them.
    if (n < 0 && errno == EPIPE) continue;
    break;  // EAGAIN: the end of the buffer
  }
  close(fd);
  return text;
}

}  // namespace keel::sandbox
