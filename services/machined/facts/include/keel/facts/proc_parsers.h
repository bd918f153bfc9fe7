// Parsers for the text files of procfs, separated from the reading so each can be
// tested on fixtures and fuzzed. Each takes the file's whole content and the name to
// use in messages ("/proc/meminfo"); malformed input gives DATA_LOSS naming that file
// and the line, never a crash. All are pure functions and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/facts/types.h"

namespace keel::facts {

// "MemTotal:  16318412 kB" lines. MemTotal and MemFree are required; the other fields
// default to 0 (MemAvailable to MemFree, for kernels before 3.14).
[[nodiscard]] Result<MemInfo> parseMemInfo(std::string_view text, std::string_view source);

// "0.20 0.18 0.12 1/80 11206".
[[nodiscard]] Result<LoadAvg> parseLoadAvg(std::string_view text, std::string_view source);

// Blank-line separated processor blocks; blocks without a "processor" line (the
// trailing "Hardware" block on Arm) are ignored. Missing per-field values stay zero.
[[nodiscard]] Result<std::vector<Cpu>> parseCpuInfo(std::string_view text, std::string_view source);

// The fields of /proc/<pid>/stat that Process needs, in the kernel's units.
struct ProcessStat {
  int32_t pid = 0;
  std::string comm;
  char state = '?';
  int32_t ppid = 0;
  uint64_t utimeTicks = 0;
  uint64_t stimeTicks = 0;
  int32_t threads = 0;
  uint64_t virtualBytes = 0;
  uint64_t residentPages = 0;
};

// "1234 (comm) S 1 …". comm may hold spaces and parentheses, so it ends at the last ')'.
[[nodiscard]] Result<ProcessStat> parseProcessStat(std::string_view text, std::string_view source);

// NUL-separated arguments joined with single spaces; trailing NULs dropped.
std::string parseCmdline(std::string_view text);

// /proc/<pid>/mountinfo (proc(5)), octal escapes ("\040") decoded. Size fields stay empty.
[[nodiscard]] Result<std::vector<Mount>> parseMountInfo(std::string_view text, std::string_view source);

// /proc/mounts (fstab format), the fallback when mountinfo is unavailable.
[[nodiscard]] Result<std::vector<Mount>> parseProcMounts(std::string_view text, std::string_view source);

// /proc/net/dev: two header lines, then "iface: 16 counters".
[[nodiscard]] Result<std::vector<NetDev>> parseNetDev(std::string_view text, std::string_view source);

// /proc/stat. The "cpu" lines and btime, ctxt, processes, procs_running and
// procs_blocked are required; unknown lines (intr, softirq…) are skipped.
[[nodiscard]] Result<SystemStat> parseProcStat(std::string_view text, std::string_view source);

// "350735.47 234388.90".
[[nodiscard]] Result<Uptime> parseUptime(std::string_view text, std::string_view source);

}  // namespace keel::facts
