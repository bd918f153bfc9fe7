// Plain value types for the machine's system facts (memory, CPUs, processes, mounts…).
// They mirror the MachineService messages field for field, so the gRPC adapter
// converts them without logic of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace keel::facts {

// /proc/meminfo, in kB as the kernel reports them.
struct MemInfo {
  uint64_t totalKb = 0;
  uint64_t freeKb = 0;
  uint64_t availableKb = 0;  // estimated by the kernel; equals freeKb on kernels without MemAvailable
  uint64_t buffersKb = 0;
  uint64_t cachedKb = 0;
  uint64_t swapTotalKb = 0;
  uint64_t swapFreeKb = 0;
};

// /proc/loadavg.
struct LoadAvg {
  double load1 = 0;
  double load5 = 0;
  double load15 = 0;
  uint32_t runnableTasks = 0;
  uint32_t totalTasks = 0;
  int32_t lastPid = 0;
};

// One logical processor of /proc/cpuinfo.
struct Cpu {
  int32_t processor = 0;
  std::string vendorId;
  std::string modelName;
  double mhz = 0;  // current clock; 0 when neither cpuinfo nor cpufreq reports it
  int32_t coreId = 0;
  int32_t cpuCores = 0;
  std::vector<std::string> flags;  // "flags" on x86, "Features" on Arm
};

struct Process {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string state;  // one letter, as in /proc/<pid>/stat: R, S, D, Z, T, t, X, I…
  int32_t threads = 0;
  double cpuSeconds = 0;  // user + system time
  uint64_t residentBytes = 0;
  uint64_t virtualBytes = 0;
  std::string command;  // comm: the executable name, at most 15 bytes
  std::string args;     // the command line with NUL separators turned into spaces; empty for kernel threads
};

struct Mount {
  std::string source;
  std::string target;
  std::string filesystem;
  std::string options;       // per-mount options ("rw,nosuid,relatime")
  std::string superOptions;  // per-filesystem options; empty when read from /proc/mounts
  // From statvfs; empty when the filesystem was not queried or could not be.
  std::optional<uint64_t> sizeBytes;
  std::optional<uint64_t> availableBytes;
};

struct DiskUsageEntry {
  std::string path;
  uint64_t sizeBytes = 0;  // apparent size (st_size) of everything below, hard links counted once
  std::string error;       // set when part of this subtree could not be read; the size is then a lower bound
};

struct DiskUsage {
  std::vector<DiskUsageEntry> entries;  // the requested path first, then its subdirectories in pre-order
  bool truncated = false;               // a limit was hit: sizes are lower bounds and entries may be missing
};

// One interface of /proc/net/dev.
struct NetDev {
  std::string name;
  uint64_t rxBytes = 0;
  uint64_t rxPackets = 0;
  uint64_t rxErrors = 0;
  uint64_t rxDropped = 0;
  uint64_t txBytes = 0;
  uint64_t txPackets = 0;
  uint64_t txErrors = 0;
  uint64_t txDropped = 0;
};

// One "cpu" line of /proc/stat, in clock ticks (USER_HZ).
struct CpuTimes {
  std::string name;  // "cpu" for the total, then "cpu0", "cpu1"…
  uint64_t user = 0;
  uint64_t nice = 0;
  uint64_t system = 0;
  uint64_t idle = 0;
  uint64_t iowait = 0;
  uint64_t irq = 0;
  uint64_t softirq = 0;
  uint64_t steal = 0;
};

// /proc/stat.
struct SystemStat {
  uint64_t bootTime = 0;  // seconds since the Unix epoch
  std::vector<CpuTimes> cpus;
  uint64_t contextSwitches = 0;
  uint64_t processesCreated = 0;
  uint64_t processesRunning = 0;
  uint64_t processesBlocked = 0;
};

// /proc/uptime.
struct Uptime {
  double uptimeSeconds = 0;
  double idleSeconds = 0;  // summed over all CPUs, so it can exceed uptimeSeconds
};

}  // namespace keel::facts
