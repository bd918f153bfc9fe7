#include "src/boot/kmsg.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include "keel/common/status.h"

namespace keel::machined {

std::string formatKmsgRecord(std::string_view record) {
  if (record.empty() || record.front() == ' ') return {};
  const auto semi = record.find(';');
  if (semi == std::string_view::npos) return {};
  const std::string_view prefix = record.substr(0, semi);
  std::string_view text = record.substr(semi + 1);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  // prefix: priority,sequence,microseconds,flags[,...]
  size_t fieldStart = 0;
  std::string_view fields[3];
  for (int i = 0; i < 3; ++i) {
    const auto comma = prefix.find(',', fieldStart);
    if (comma == std::string_view::npos) return {};
    fields[i] = prefix.substr(fieldStart, comma - fieldStart);
    fieldStart = comma + 1;
  }
  uint64_t usec = 0;
  const auto [ptr, ec] = std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), usec);
  if (ec != std::errc() || ptr != fields[2].data() + fields[2].size()) return {};
  // Control characters in kernel messages are escaped by the kernel as \xNN already.
  return fmt::format("[{:5}.{:06}] {}", usec / 1000000, usec % 1000000, text);
}

Result<KernelLog> KernelLog::open(const std::filesystem::path& device) {
  const int fd = ::open(device.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return unavailable(fmt::format("the kernel log {} cannot be read: {}", device.string(), errnoText(errno)));
  }
  return KernelLog(fd);
}

Result<std::vector<std::string>> KernelLog::readAvailable() {
  std::vector<std::string> lines;
  std::string pending;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      // /dev/kmsg returns one record per read; a regular file returns many at once.
      pending.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
        auto line = formatKmsgRecord(std::string_view(pending).substr(start, nl - start));
        if (!line.empty()) lines.push_back(std::move(line));
        start = nl + 1;
      }
      pending.erase(0, start);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EPIPE) continue;  // records were overwritten before we read them
    if (errno == EAGAIN) break;
    return unavailable(fmt::format("reading the kernel log failed: {}", errnoText(errno)));
  }
  if (!pending.empty()) {
    auto line = formatKmsgRecord(pending);
    if (!line.empty()) lines.push_back(std::move(line));
  }
  return lines;
}

bool KernelLog::waitReadable(int timeoutMs) const {
  pollfd p{fd_.get(), POLLIN, 0};
  return poll(&p, 1, timeoutMs) > 0 && (p.revents & POLLIN) != 0;
}

}  // namespace keel::machined
