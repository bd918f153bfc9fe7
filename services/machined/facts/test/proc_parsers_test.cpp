#include "keel/facts/proc_parsers.h"

#include <string>

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

namespace keel::facts {
namespace {

using Catch::Approx;
using Catch::Matchers::ContainsSubstring;

constexpr std::string_view kMemInfo =
    "MemTotal:       16318412 kB\n"
    "MemFree:         1234567 kB\n"
    "MemAvailable:    9876543 kB\n"
    "Buffers:          345678 kB\n"
    "Cached:          5678901 kB\n"
    "SwapCached:            0 kB\n"
    "Active:          6543210 kB\n"
    "SwapTotal:       2097148 kB\n"
    "SwapFree:        2000000 kB\n"
    "VmallocTotal:   34359738367 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

TEST_CASE("meminfo fields are read in kB", "[facts][meminfo]") {
  const auto info = parseMemInfo(kMemInfo, "/proc/meminfo");
  REQUIRE(info.ok());
  CHECK(info->totalKb == 16318412);
  CHECK(info->freeKb == 1234567);
  CHECK(info->availableKb == 9876543);
  CHECK(info->buffersKb == 345678);
  CHECK(info->cachedKb == 5678901);
  CHECK(info->swapTotalKb == 2097148);
  CHECK(info->swapFreeKb == 2000000);
}

TEST_CASE("meminfo without MemAvailable reports free memory as available", "[facts][meminfo]") {
  const auto info = parseMemInfo("MemTotal: 1000 kB\nMemFree: 300 kB\n", "/proc/meminfo");
  REQUIRE(info.ok());
  CHECK(info->availableKb == 300);
}

TEST_CASE("malformed meminfo is DATA_LOSS naming the file, line and text found", "[facts][meminfo]") {
  const auto bad = parseMemInfo("MemTotal: 1000 kB\nMemFree: lots kB\n", "/proc/meminfo");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad.status().message(), ContainsSubstring("/proc/meminfo line 2"));
  CHECK_THAT(bad.status().message(), ContainsSubstring("'MemFree: lots kB'"));

  const auto noTotal = parseMemInfo("MemFree: 1 kB\n", "/proc/meminfo");
  REQUIRE_FALSE(noTotal.ok());
  CHECK(noTotal.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(noTotal.status().message(), ContainsSubstring("expected a MemTotal line"));

  const auto negative = parseMemInfo("MemTotal: -5 kB\nMemFree: 1 kB\n", "/proc/meminfo");
  CHECK(negative.status().code() == StatusCode::kDataLoss);
}

TEST_CASE("loadavg gives the three averages and the task counts", "[facts][loadavg]") {
  const auto avg = parseLoadAvg("0.20 0.18 0.12 1/80 11206\n", "/proc/loadavg");
  REQUIRE(avg.ok());
  CHECK(avg->load1 == Approx(0.20));
  CHECK(avg->load5 == Approx(0.18));
  CHECK(avg->load15 == Approx(0.12));
  CHECK(avg->runnableTasks == 1);
  CHECK(avg->totalTasks == 80);
  CHECK(avg->lastPid == 11206);

  CHECK(parseLoadAvg("0.20 0.18 0.12 180 11206\n", "/proc/loadavg").status().code() == StatusCode::kDataLoss);
  CHECK(parseLoadAvg("", "/proc/loadavg").status().code() == StatusCode::kDataLoss);
}

constexpr std::string_view kCpuInfoX86 =
    "processor\t: 0\n"
    "vendor_id\t: GenuineIntel\n"
    "cpu family\t: 6\n"
    "model\t\t: 85\n"
    "model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n"
    "stepping\t: 7\n"
    "cpu MHz\t\t: 2499.998\n"
    "cache size\t: 36608 KB\n"
    "physical id\t: 0\n"
    "siblings\t: 2\n"
    "core id\t\t: 0\n"
    "cpu cores\t: 1\n"
    "flags\t\t: fpu vme de pse tsc msr pae\n"
    "bugs\t\t: spectre_v1 spectre_v2\n"
    "power management:\n"
    "\n"
    "processor\t: 1\n"
    "vendor_id\t: GenuineIntel\n"
    "model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n"
    "cpu MHz\t\t: 2499.998\n"
    "core id\t\t: 0\n"
    "cpu cores\t: 1\n"
    "flags\t\t: fpu vme\n"
    "power management:\n"
    "\n";

TEST_CASE("cpuinfo gives one entry per logical processor", "[facts][cpuinfo]") {
  const auto cpus = parseCpuInfo(kCpuInfoX86, "/proc/cpuinfo");
  REQUIRE(cpus.ok());
  REQUIRE(cpus->size() == 2);
  const Cpu& c0 = (*cpus)[0];
  CHECK(c0.processor == 0);
  CHECK(c0.vendorId == "GenuineIntel");
  CHECK(c0.modelName == "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
  CHECK(c0.mhz == Approx(2499.998));
  CHECK(c0.coreId == 0);
  CHECK(c0.cpuCores == 1);
  CHECK(c0.flags == std::vector<std::string>{"fpu", "vme", "de", "pse", "tsc", "msr", "pae"});
  CHECK((*cpus)[1].processor == 1);
  CHECK((*cpus)[1].flags == std::vector<std::string>{"fpu", "vme"});
}

TEST_CASE("Arm cpuinfo reads Features as flags and ignores the board block", "[facts][cpuinfo]") {
  constexpr std::string_view kArm =
      "processor\t: 0\n"
      "BogoMIPS\t: 108.00\n"
      "Features\t: fp asimd evtstrm crc32 cpuid\n"
      "CPU implementer\t: 0x41\n"
      "CPU part\t: 0xd08\n"
      "\n"
      "processor\t: 1\n"
      "Features\t: fp asimd\n"
      "\n"
      "Hardware\t: BCM2835\n"
      "Revision\t: c03111\n"
      "Serial\t\t: 10000000abcdef01\n";
  const auto cpus = parseCpuInfo(kArm, "/proc/cpuinfo");
  REQUIRE(cpus.ok());
  REQUIRE(cpus->size() == 2);
  CHECK((*cpus)[0].flags == std::vector<std::string>{"fp", "asimd", "evtstrm", "crc32", "cpuid"});
  CHECK((*cpus)[0].mhz == 0);
}

TEST_CASE("garbage cpuinfo is DATA_LOSS with the line number", "[facts][cpuinfo]") {
  const auto bad = parseCpuInfo("processor\t: 0\nthis line has no colon\n", "/proc/cpuinfo");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad.status().message(), ContainsSubstring("/proc/cpuinfo line 2"));
  CHECK(parseCpuInfo("processor : zero\n", "/proc/cpuinfo").status().code() == StatusCode::kDataLoss);
  CHECK(parseCpuInfo("processor : 0\ncpu MHz : fast\n", "/proc/cpuinfo").status().code() ==
        StatusCode::kDataLoss);
}

// A real line from a 6.x kernel (init, 52 fields).
constexpr std::string_view kStatInit =
    "1 (systemd) S 0 1 1 0 -1 4194560 51234 2345678 120 3456 250 130 4567 890 20 0 1 0 12 "
    "173527040 3221 18446744073709551615 1 1 0 0 0 0 671173123 4096 1260 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 "
    "0\n";

TEST_CASE("process stat gives pid, parent, state, times, threads and memory", "[facts][processes]") {
  const auto st = parseProcessStat(kStatInit, "/proc/1/stat");
  REQUIRE(st.ok());
  CHECK(st->pid == 1);
  CHECK(st->comm == "systemd");
  CHECK(st->state == 'S');
  CHECK(st->ppid == 0);
  CHECK(st->utimeTicks == 250);
  CHECK(st->stimeTicks == 130);
  CHECK(st->threads == 1);
  CHECK(st->virtualBytes == 173527040);
  CHECK(st->residentPages == 3221);
}

TEST_CASE("process stat whose comm holds spaces and parentheses ends comm at the last ')'",
          "[facts][processes]") {
  const std::string line =
      "4242 (evil) R 1 2 (x) y) S 77 4242 4242 0 -1 4194304 10 0 0 0 300 200 0 0 20 0 3 0 99 "
      "1048576 25 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  const auto st = parseProcessStat(line, "/proc/4242/stat");
  REQUIRE(st.ok());
  CHECK(st->comm == "evil) R 1 2 (x) y");
  CHECK(st->state == 'S');
  CHECK(st->ppid == 77);
  CHECK(st->utimeTicks == 300);
  CHECK(st->stimeTicks == 200);
  CHECK(st->threads == 3);
  CHECK(st->virtualBytes == 1048576);
  CHECK(st->residentPages == 25);
}

TEST_CASE("truncated or garbage process stat is DATA_LOSS", "[facts][processes]") {
  for (const std::string_view bad :
       {std::string_view("1 (init) S 0 1"), std::string_view("garbage"), std::string_view("(x) S"),
        std::string_view("1 (a) S 0 1 1 0 -1 0 0 0 0 0 x 130 0 0 20 0 1 0 12 1 2 3\n"),
        std::string_view("\x01\x02\xff", 3), std::string_view("1 (a)")}) {
    const auto st = parseProcessStat(bad, "/proc/1/stat");
    REQUIRE_FALSE(st.ok());
    CHECK(st.status().code() == StatusCode::kDataLoss);
    CHECK_THAT(st.status().message(), ContainsSubstring("/proc/1/stat line 1"));
  }
}

TEST_CASE("cmdline NUL separators become spaces", "[facts][processes]") {
  using namespace std::string_view_literals;
  CHECK(parseCmdline("/usr/bin/machined\0--config\0/etc/keel/node.json\0"sv) ==
        "/usr/bin/machined --config /etc/keel/node.json");
  CHECK(parseCmdline("").empty());
  CHECK(parseCmdline("\0\0"sv).empty());
}

constexpr std::string_view kMountInfo =
    "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
    "27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n"
    "40 27 0:35 / /mnt/with\\040space rw,relatime shared:20 master:3 - tmpfs tmp\\040fs rw,size=1024k\n"
    "41 27 0:36 / /run/keel rw - tmpfs tmpfs rw\n";

TEST_CASE("mountinfo gives source, target, type and options, with escapes decoded", "[facts][mounts]") {
  const auto mounts = parseMountInfo(kMountInfo, "/proc/self/mountinfo");
  REQUIRE(mounts.ok());
  REQUIRE(mounts->size() == 4);
  CHECK((*mounts)[0].source == "proc");
  CHECK((*mounts)[0].target == "/proc");
  CHECK((*mounts)[0].filesystem == "proc");
  CHECK((*mounts)[0].options == "rw,nosuid,nodev,noexec,relatime");
  CHECK((*mounts)[1].source == "/dev/vda1");
  CHECK((*mounts)[1].superOptions == "rw,errors=remount-ro");
  CHECK((*mounts)[2].target == "/mnt/with space");
  CHECK((*mounts)[2].source == "tmp fs");
  CHECK((*mounts)[3].target == "/run/keel");
  CHECK_FALSE((*mounts)[0].sizeBytes.has_value());
}

TEST_CASE("mountinfo without the '-' separator is DATA_LOSS", "[facts][mounts]") {
  const auto bad =
      parseMountInfo("22 27 0:21 / /proc rw,relatime shared:13 proc proc rw\n", "/proc/self/mountinfo");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad.status().message(), ContainsSubstring("/proc/self/mountinfo line 1"));
  CHECK(parseMountInfo("a b c d e f - x y z\n", "m").status().code() == StatusCode::kDataLoss);
  CHECK(parseMountInfo("1 2 3 4 5 - x\n", "m").status().code() == StatusCode::kDataLoss);
}

TEST_CASE("/proc/mounts is read as the fallback format", "[facts][mounts]") {
  const auto mounts =
      parseProcMounts("sysfs /sys sysfs rw,nosuid 0 0\n/dev/vda1 / ext4 rw,relatime 0 0\n", "/proc/mounts");
  REQUIRE(mounts.ok());
  REQUIRE(mounts->size() == 2);
  CHECK((*mounts)[1].source == "/dev/vda1");
  CHECK((*mounts)[1].target == "/");
  CHECK((*mounts)[1].filesystem == "ext4");
  CHECK((*mounts)[1].options == "rw,relatime");
  CHECK(parseProcMounts("only three fields\n", "/proc/mounts").status().code() == StatusCode::kDataLoss);
}

constexpr std::string_view kNetDev =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
    "carrier compressed\n"
    "    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0 "
    "      "
    "0          0\n"
    "  eth0:98765432109876 4321 1 2 0 0 0 17 12345678 8765 3 4 0 0 0 0\n";

TEST_CASE("net/dev gives per-interface receive and transmit counters", "[facts][netdev]") {
  const auto devs = parseNetDev(kNetDev, "/proc/net/dev");
  REQUIRE(devs.ok());
  REQUIRE(devs->size() == 2);
  CHECK((*devs)[0].name == "lo");
  CHECK((*devs)[0].rxBytes == 123456);
  CHECK((*devs)[0].txPackets == 789);
  const NetDev& eth = (*devs)[1];
  CHECK(eth.name == "eth0");
  CHECK(eth.rxBytes == 98765432109876ULL);
  CHECK(eth.rxPackets == 4321);
  CHECK(eth.rxErrors == 1);
  CHECK(eth.rxDropped == 2);
  CHECK(eth.txBytes == 12345678);
  CHECK(eth.txPackets == 8765);
  CHECK(eth.txErrors == 3);
  CHECK(eth.txDropped == 4);
}

TEST_CASE("net/dev without headers or with short rows is DATA_LOSS", "[facts][netdev]") {
  CHECK(parseNetDev("eth0: 1 2 3\n", "/proc/net/dev").status().code() == StatusCode::kDataLoss);
  const std::string shortRow = std::string(kNetDev.substr(0, kNetDev.find("    lo"))) + "  eth0: 1 2 3\n";
  const auto bad = parseNetDev(shortRow, "/proc/net/dev");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), ContainsSubstring("/proc/net/dev line 3"));
}

constexpr std::string_view kProcStat =
    "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n"
    "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n"
    "cpu1 1335 0 10 4000 5 6 7 8 0 0\n"
    "intr 199292 0 9 0 0 0 0 3 0 1 0 0 0 0\n"
    "ctxt 4321987\n"
    "btime 1764184417\n"
    "processes 86031\n"
    "procs_running 2\n"
    "procs_blocked 1\n"
    "softirq 123 4 5 6\n";

TEST_CASE("/proc/stat gives boot time, per-CPU times and scheduler counters", "[facts][stat]") {
  const auto st = parseProcStat(kProcStat, "/proc/stat");
  REQUIRE(st.ok());
  CHECK(st->bootTime == 1764184417);
  CHECK(st->contextSwitches == 4321987);
  CHECK(st->processesCreated == 86031);
  CHECK(st->processesRunning == 2);
  CHECK(st->processesBlocked == 1);
  REQUIRE(st->cpus.size() == 3);
  CHECK(st->cpus[0].name == "cpu");
  CHECK(st->cpus[0].user == 10132153);
  CHECK(st->cpus[0].idle == 46828483);
  CHECK(st->cpus[2].name == "cpu1");
  CHECK(st->cpus[2].iowait == 5);
  CHECK(st->cpus[2].irq == 6);
  CHECK(st->cpus[2].softirq == 7);
  CHECK(st->cpus[2].steal == 8);
}

TEST_CASE("/proc/stat with a bad counter or without btime is DATA_LOSS", "[facts][stat]") {
  const auto bad = parseProcStat("cpu 1 2 3 4\nctxt many\n", "/proc/stat");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad.status().message(), ContainsSubstring("/proc/stat line 2"));
  const auto noBtime =
      parseProcStat("cpu 1 2 3 4\nctxt 1\nprocesses 2\nprocs_running 1\nprocs_blocked 0\n", "/proc/stat");
  REQUIRE_FALSE(noBtime.ok());
  CHECK_THAT(noBtime.status().message(), ContainsSubstring("btime"));
  CHECK(parseProcStat("cpu 1 2\n", "/proc/stat").status().code() == StatusCode::kDataLoss);
}

TEST_CASE("uptime gives uptime and idle seconds", "[facts][uptime]") {
  const auto up = parseUptime("350735.47 234388.90\n", "/proc/uptime");
  REQUIRE(up.ok());
  CHECK(up->uptimeSeconds == Approx(350735.47));
  CHECK(up->idleSeconds == Approx(234388.90));
  const auto bad = parseUptime("soon\n", "/proc/uptime");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(bad.status().message(),
             ContainsSubstring("/proc/uptime line 1: expected '<uptime seconds> <idle seconds>'"));
}

TEST_CASE("binary garbage never crashes a parser and gives DATA_LOSS or an empty result", "[facts]") {
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage += static_cast<char>((i * 7919 + 13) % 256);
  CHECK(parseMemInfo(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseLoadAvg(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseCpuInfo(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseProcessStat(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseMountInfo(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseProcMounts(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseNetDev(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseProcStat(garbage, "g").status().code() == StatusCode::kDataLoss);
  CHECK(parseUptime(garbage, "g").status().code() == StatusCode::kDataLoss);
}

}  // namespace
}  // namespace keel::facts
