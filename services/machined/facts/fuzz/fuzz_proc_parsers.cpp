// Feeds arbitrary bytes to every procfs parser: each must return a value or an error,
// never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/facts/proc_parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  using namespace keel::facts;
  (void)parseMemInfo(in, "meminfo");
  (void)parseLoadAvg(in, "loadavg");
  (void)parseCpuInfo(in, "cpuinfo");
  (void)parseProcessStat(in, "stat");
  (void)parseCmdline(in);
  (void)parseMountInfo(in, "mountinfo");
  (void)parseProcMounts(in, "mounts");
  (void)parseNetDev(in, "net/dev");
  (void)parseProcStat(in, "stat");
  (void)parseUptime(in, "uptime");
  return 0;
}
