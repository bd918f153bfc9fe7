// machined's read-only view of the machine: memory, CPUs, processes, mounts, disk
// usage, network counters and uptime, read from procfs and sysfs under injectable
// roots so tests run on fixture trees instead of the host's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "keel/facts/types.h"

namespace keel::facts {

// Size and free space of one mounted filesystem.
struct FsUsage {
  uint64_t sizeBytes = 0;
  uint64_t availableBytes = 0;  // available to unprivileged users (f_bavail)
};

// Reads a filesystem's usage from its mount point. Must be thread-safe.
using StatFs = std::function<Result<FsUsage>(const std::string& target)>;

// statvfs(3) on `target`. Thread-safe.
[[nodiscard]] Result<FsUsage> statFs(const std::string& target);

struct FactsOptions {
  std::filesystem::path procRoot = "/proc";
  std::filesystem::path sysRoot = "/sys";  // only cpufreq, for CPUs whose cpuinfo has no "cpu MHz"
  int64_t clockTicksPerSecond = 0;         // 0: sysconf(_SC_CLK_TCK)
  uint64_t pageSize = 0;                   // 0: sysconf(_SC_PAGESIZE)
  std::optional<std::string> hostname;     // unset: gethostname(2)
  StatFs statFs = keel::facts::statFs;     // empty: mounts carry no sizes
};

struct DiskUsageLimits {
  size_t maxEntries = 10000;      // directories reported
  size_t maxVisited = 1000000;    // filesystem objects examined: bounds the time a call takes
  size_t maxNesting = 128;        // directory levels descended: bounds open descriptors
  bool crossFilesystems = false;  // false: like `du -x`, mount points below the path are skipped
};

// Every method reads the files anew on each call and keeps no state, so all are
// thread-safe provided the injected StatFs is. Unreadable files give NOT_FOUND,
// PERMISSION_DENIED or INTERNAL naming the file; malformed ones DATA_LOSS naming the
// file and line.
class SystemFacts {
 public:
  explicit SystemFacts(FactsOptions options = {});
  SystemFacts(std::filesystem::path procRoot, std::filesystem::path sysRoot);

  // <proc>/meminfo.
  [[nodiscard]] Result<MemInfo> memory() const;

  // <proc>/loadavg.
  [[nodiscard]] Result<LoadAvg> loadAvg() const;

  // <proc>/cpuinfo, one entry per logical processor; MHz from <sys> cpufreq when cpuinfo lacks it.
  [[nodiscard]] Result<std::vector<Cpu>> cpuInfo() const;

  // <proc>/<pid>/stat and cmdline of every process, sorted by pid. A process that exits
  // while being read, or whose files are hidden from us, is left out.
  [[nodiscard]] Result<std::vector<Process>> processes() const;

  // <proc>/self/mountinfo (or <proc>/mounts when absent), with sizes from the injected
  // StatFs where it answers. Network and automount filesystems are not queried: statvfs
  // on them can block on a dead server or trigger a mount.
  [[nodiscard]] Result<std::vector<Mount>> mounts() const;

  // Apparent sizes of the absolute `path` and of its subdirectories down to `depth`
  // levels (0: the path alone), each counting everything below it. Reads the real
  // filesystem, never follows symlinks (a symlinked `path` is measured as the link).
  // Unreadable parts are recorded in the entries' error, not fatal; limits make it
  // stop early with `truncated` set. INVALID_ARGUMENT for a relative path or negative
  // depth, NOT_FOUND when `path` does not exist.
  [[nodiscard]] Result<DiskUsage> diskUsage(const std::filesystem::path& path, int depth,
                                            const DiskUsageLimits& limits = {}) const;

  // <proc>/net/dev.
  [[nodiscard]] Result<std::vector<NetDev>> networkDeviceStats() const;

  // <proc>/stat.
  [[nodiscard]] Result<SystemStat> systemStat() const;

  // <proc>/uptime.
  [[nodiscard]] Result<Uptime> uptime() const;

  // The injected host name, or gethostname(2).
  [[nodiscard]] Result<std::string> hostname() const;

 private:
  FactsOptions options_;
};

}  // namespace keel::facts
