// Finding the node image's disks: a virtio disk by the serial QEMU or the hypervisor gave
// it, and whether a disk holds an ext4 filesystem yet. Shared by the initramfs's init (a
// static program that links nothing of Keel's) and machined's PID 1, so header-only,
// standard library and system calls only.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace keel::machined::boot {

// Reads a small file whole (at most `max` bytes). False when it cannot be opened or read.
inline bool readSmallFile(const std::string& path, std::string& out, size_t max = 64 * 1024) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  ssize_t n = 0;
  while (out.size() < max && (n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return n >= 0;
}

// The block device whose serial (/sys/block/*/serial) is `serial` ("/dev/vdb"), once its
// device node exists; empty when none is there.
inline std::string findDiskBySerial(const std::string& serial) {
  DIR* dir = ::opendir("/sys/block");
  if (dir == nullptr) return {};
  std::string found;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string value;
    if (!readSmallFile(std::string("/sys/block/") + e->d_name + "/serial", value, 256)) continue;
    while (!value.empty() && (value.back() == '\n' || value.back() == ' ' || value.back() == '\0')) value.pop_back();
    const std::string dev = std::string("/dev/") + e->d_name;
    if (value == serial && ::access(dev.c_str(), F_OK) == 0) {
      found = dev;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// findDiskBySerial, waiting up to `wait` for the disk to appear (devices are probed while
// init and PID 1 run); empty when it did not.
inline std::string waitForDiskBySerial(const std::string& serial, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    std::string dev = findDiskBySerial(serial);
    if (!dev.empty() || std::chrono::steady_clock::now() >= deadline) return dev;
    const timespec step{0, 20'000'000};
    ::nanosleep(&step, nullptr);
  }
}

// Whether `dev` holds an ext2/3/4 filesystem: the superblock starts at byte 1024 and its
// magic 0xEF53 is at offset 56 in it, little-endian.
inline bool hasExt4(const std::string& dev) {
  const int fd = ::open(dev.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char magic[2] = {0, 0};
  const bool read = ::pread(fd, magic, 2, 1024 + 56) == 2;
  ::close(fd);
  return read && magic[0] == 0x53 && magic[1] == 0xEF;
}

}  // namespace keel::machined::boot
