// Small helpers of keel_init, the initramfs's static /init: console lines, errno text and
// whole-file reads. keel_init links none of Keel's libraries (it would pull their shared
// dependencies into the initramfs), so these stand in for keel/common's.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace keel::init {

// One line on the console, prefixed "keel-init: ".
inline void say(const std::string& line) {
  const std::string out = "keel-init: " + line + "\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, out.data(), out.size());
}

// A step of the boot timeline, "keel-boot: T s STEP" with the seconds since the kernel
// started (CLOCK_BOOTTIME), on the console and in the kernel log (dmesg), as machined writes
// its steps (services/machined/src/boot/boot_timeline.h). Returns "STEP T s".
inline std::string bootMark(const std::string& step) {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  const double at = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.2f s", at);
  const std::string line = "keel-boot: " + std::string(seconds) + " " + step + "\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, line.data(), line.size());
  if (const int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC); kmsg >= 0) {
    const std::string record = "<6>" + line;
    n = write(kmsg, record.data(), record.size());
    close(kmsg);
  }
  return step + " " + seconds;
}

inline std::string errnoText(int err) {
  return std::strerror(err);
}
inline std::string errnoText() {
  return errnoText(errno);
}

// The whole file, up to `limit` bytes; false when it cannot be read or is longer.
inline bool readSmallFile(const std::string& path, std::string& out, size_t limit = 1 << 20) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  out.clear();
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() <= limit) out.append(buf, static_cast<size_t>(n));
  const int err = errno;
  close(fd);
  errno = err;
  return n == 0 && out.size() <= limit;
}

// At most the first `limit` bytes of a file or device (a config disk is its JSON padded
// with zero bytes to the disk's size); false when it cannot be read.
inline bool readHead(const std::string& path, std::string& out, size_t limit) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.assign(limit, '\0');
  size_t done = 0;
  ssize_t n = 0;
  while (done < limit && (n = read(fd, out.data() + done, limit - done)) > 0) done += static_cast<size_t>(n);
  const int err = errno;
  close(fd);
  errno = err;
  out.resize(done);
  return n >= 0;
}

}  // namespace keel::init
