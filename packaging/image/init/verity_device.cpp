// Loop and device-mapper plumbing of keel_init (see verity_device.h). The table line is
// dm-verity's format 1: version, data device, hash device, data and hash block sizes,
// number of data blocks, first hash block, algorithm, root hash, salt, optional arguments.
#include "verity_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include <linux/dm-ioctl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "init_io.h"

namespace keel::init {

namespace {

constexpr const char* kDmControl = "/dev/mapper/control";
constexpr size_t kReadChunk = 1 << 20;

// One device-mapper request: the dm_ioctl header naming `name`, and for a table load one
// target spec followed by its parameter line, padded to 8 bytes.
bool dmCall(unsigned long request, const std::string& name, uint32_t flags, const std::string& target,
            const std::string& params, uint64_t sectors, dm_ioctl& reply, std::string& error) {
  const size_t paramBytes = (params.size() + 1 + 7) / 8 * 8;
  const size_t size = sizeof(dm_ioctl) + (target.empty() ? 0 : sizeof(dm_target_spec) + paramBytes);
  std::vector<char> buf(size, '\0');
  auto* io = reinterpret_cast<dm_ioctl*>(buf.data());
  // Version 4 of the interface; any minor the kernel has will do.
  io->version[0] = DM_VERSION_MAJOR;
  io->data_size = static_cast<uint32_t>(size);
  io->data_start = sizeof(dm_ioctl);
  io->flags = flags;
  std::strncpy(io->name, name.c_str(), DM_NAME_LEN - 1);
  if (!target.empty()) {
    io->target_count = 1;
    auto* spec = reinterpret_cast<dm_target_spec*>(buf.data() + sizeof(dm_ioctl));
    spec->sector_start = 0;
    spec->length = sectors;
    spec->next = static_cast<uint32_t>(sizeof(dm_target_spec) + paramBytes);
    std::strncpy(spec->target_type, target.c_str(), DM_MAX_TYPE_NAME - 1);
    std::memcpy(buf.data() + sizeof(dm_ioctl) + sizeof(dm_target_spec), params.c_str(), params.size());
  }
  const int control = open(kDmControl, O_RDWR | O_CLOEXEC);
  if (control < 0) {
    error = std::string("cannot open ") + kDmControl + ": " + errnoText();
    return false;
  }
  const bool ok = ioctl(control, request, buf.data()) == 0;
  const int err = errno;
  close(control);
  if (!ok) {
    error = errnoText(err);
    return false;
  }
  std::memcpy(&reply, buf.data(), sizeof reply);
  return true;
}

std::string tableLine(const std::string& dataDev, const std::string& hashDev, const VerityParams& p,
                      bool restartOnCorruption) {
  std::string line = "1 " + dataDev + " " + hashDev + " " + std::to_string(p.dataBlockSize) + " " +
                     std::to_string(p.hashBlockSize) + " " + std::to_string(p.dataBytes / p.dataBlockSize) +
                     " " + std::to_string(p.hashStartBlock) + " " + p.algorithm + " " + p.rootHash + " " +
                     p.salt;
  if (restartOnCorruption) line += " 1 restart_on_corruption";
  return line;
}

// Loads a table into `name` and makes it live (a resume swaps the loaded table in).
bool loadAndResume(const std::string& name, const std::string& line, uint64_t sectors, std::string& error) {
  dm_ioctl reply{};
  if (!dmCall(DM_TABLE_LOAD, name, DM_READONLY_FLAG, "verity", line, sectors, reply, error)) {
    error = "the kernel refused the verity table: " + error;
    return false;
  }
  if (!dmCall(DM_DEV_SUSPEND, name, 0, "", "", 0, reply, error)) {
    error = "cannot resume the verity device: " + error;
    return false;
  }
  return true;
}

// devtmpfs adds the node as the kernel adds the disk; wait a moment in case it lags.
bool waitForNode(const std::string& node) {
  for (int i = 0; i < 100; ++i) {
    if (access(node.c_str(), F_OK) == 0) return true;
    const timespec step{0, 10 * 1000 * 1000};
    nanosleep(&step, nullptr);
  }
  return false;
}

double secondsSince(const timespec& start) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - start.tv_sec) +
         static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
}

// Reads the whole device once, bypassing the page cache (the squashfs reads the device
// itself later): dm-verity checks each block against the tree and fails the read of one
// that does not match.
bool readThrough(const std::string& node, uint64_t bytes, std::string& error) {
  const int fd = open(node.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open " + node + ": " + errnoText();
    return false;
  }
  void* buf = std::aligned_alloc(4096, kReadChunk);
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  uint64_t done = 0;
  ssize_t n = 0;
  while (buf != nullptr && done < bytes && (n = pread(fd, buf, kReadChunk, static_cast<off_t>(done))) > 0) {
    done += static_cast<uint64_t>(n);
  }
  const int err = errno;
  std::free(buf);
  close(fd);
  if (done < bytes) {
    error = "dm-verity verification failed reading the root at byte " + std::to_string(done) + " of " +
            std::to_string(bytes) + ": " + (n < 0 ? errnoText(err) : std::string("short device"));
    return false;
  }
  char line[96];
  std::snprintf(line, sizeof line, "verified %.1f MiB of root through dm-verity in %.2f s",
                static_cast<double>(bytes) / (1 << 20), secondsSince(start));
  say(line);
  return true;
}

}  // namespace

int attachLoop(const std::string& file, std::string& dev, std::string& error) {
  const int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (control < 0) {
    error = std::string("cannot open /dev/loop-control: ") + errnoText();
    return -1;
  }
  const int n = ioctl(control, LOOP_CTL_GET_FREE);
  close(control);
  if (n < 0) {
    error = "no free loop device: " + errnoText();
    return -1;
  }
  dev = "/dev/loop" + std::to_string(n);
  const int backing = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (backing < 0) {
    error = "cannot open " + file + ": " + errnoText();
    return -1;
  }
  const int loop = open(dev.c_str(), O_RDWR | O_CLOEXEC);
  loop_config config{};
  config.fd = static_cast<unsigned>(backing);
  config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  const bool ok = loop >= 0 && ioctl(loop, LOOP_CONFIGURE, &config) == 0;
  const int err = errno;
  close(backing);
  if (!ok) {
    error = "cannot attach " + file + " to " + dev + ": " + errnoText(err);
    if (loop >= 0) close(loop);
    return -1;
  }
  return loop;
}

std::string openVerity(const std::string& name, const std::string& dataDev, const std::string& hashDev,
                       const VerityParams& params, std::string& error) {
  dm_ioctl created{};
  if (!dmCall(DM_DEV_CREATE, name, 0, "", "", 0, created, error)) {
    error = "cannot create the dm-verity device " + name + ": " + error;
    return {};
  }
  const std::string node = "/dev/dm-" + std::to_string(minor(static_cast<dev_t>(created.dev)));
  const uint64_t sectors = params.dataBytes / 512;
  bool ok = loadAndResume(name, tableLine(dataDev, hashDev, params, false), sectors, error);
  if (ok && !waitForNode(node)) {
    error = node + " did not appear";
    ok = false;
  }
  ok = ok && readThrough(node, params.dataBytes, error);
  // Checked whole: from now on a mismatch means the disk changed under the running
  // system, and a restart lets the next boot's read-through give the root up.
  ok = ok && loadAndResume(name, tableLine(dataDev, hashDev, params, true), sectors, error);
  if (!ok) {
    dm_ioctl removed{};
    std::string ignored;
    if (!dmCall(DM_DEV_REMOVE, name, 0, "", "", 0, removed, ignored))
      say("cannot remove " + name + ": " + ignored);
    return {};
  }
  return node;
}

}  // namespace keel::init
