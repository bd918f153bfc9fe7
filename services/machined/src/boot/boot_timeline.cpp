// See boot_timeline.h.
#include "src/boot/boot_timeline.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

namespace keel::machined {

double secondsSinceBoot() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string bootMark(const std::string& step) {
  const double at = secondsSinceBoot();
  const std::string line = fmt::format("keel-boot: {:.2f} s {}\n", at, step);
  [[maybe_unused]] auto n = write(STDERR_FILENO, line.data(), line.size());
  // Level 6 (info): in the kernel log for dmesg, not printed by the kernel on a quiet console.
  if (const int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC); kmsg >= 0) {
    const std::string record = "<6>" + line;
    n = write(kmsg, record.data(), record.size());
    close(kmsg);
  }
  return fmt::format("{} {:.2f} s", step, at);
}

}  // namespace keel::machined
