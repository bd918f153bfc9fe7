// The kernel ring buffer, read from /dev/kmsg (one record per read) and formatted
// like dmesg: "[    12.345678] message". The device path is injected for tests.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/common/fd_io.h"

namespace keel::machined {

// Formats one /dev/kmsg record ("pri,seq,usec,flags;text"); continuation lines (they
// start with a space) and malformed records yield an empty string.
std::string formatKmsgRecord(std::string_view record);

class KernelLog {
 public:
  // UNAVAILABLE, with the reason, when the device cannot be opened (no permission,
  // kernel.dmesg_restrict, not present in a container).
  static Result<KernelLog> open(const std::filesystem::path& device);
  KernelLog(KernelLog&& other) noexcept = default;
  KernelLog& operator=(KernelLog&&) = delete;
  KernelLog(const KernelLog&) = delete;
  ~KernelLog() = default;

  // Every record available now, formatted; empty when there is nothing new.
  Result<std::vector<std::string>> readAvailable();
  // Waits up to `timeoutMs` for a new record. True when one is ready.
  bool waitReadable(int timeoutMs) const;

 private:
  explicit KernelLog(int fd) : fd_(fd) {}
  UniqueFd fd_;
};

}  // namespace keel::machined
