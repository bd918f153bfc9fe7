#include "keel/facts/system_facts.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <sys/stat.h>

#include "keel/testing/testing.h"

namespace keel::facts {
namespace {

namespace fs = std::filesystem;
using Catch::Approx;
using Catch::Matchers::ContainsSubstring;
using keel::testing::TempDir;
using keel::testing::writeFile;

void put(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  writeFile(path, content);
}

std::string statLine(int pid, const std::string& comm, char state, int ppid, int utime, int stime,
                     int threads, uint64_t vsize, uint64_t rssPages) {
  return std::to_string(pid) + " (" + comm + ") " + state + " " + std::to_string(ppid) + " " +
         std::to_string(pid) + " " + std::to_string(pid) + " 0 -1 4194560 100 0 0 0 " +
         std::to_string(utime) + " " + std::to_string(stime) + " 0 0 20 0 " + std::to_string(threads) +
         " 0 12 " + std::to_string(vsize) + " " + std::to_string(rssPages) +
         " 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
}

// A procfs/sysfs fixture tree with realistic content.
struct Fixture {
  TempDir dir;
  fs::path proc = dir / "proc";
  fs::path sys = dir / "sys";

  Fixture() {
    put(proc / "meminfo",
        "MemTotal:        8041236 kB\nMemFree:          512000 kB\nMemAvailable:    4000000 kB\n"
        "Buffers:           12345 kB\nCached:          2345678 kB\nSwapCached:            0 kB\n"
        "SwapTotal:             0 kB\nSwapFree:              0 kB\nHugePages_Total:       0\n");
    put(proc / "loadavg", "1.50 0.75 0.25 3/412 98765\n");
    put(proc / "cpuinfo",
        "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n\n"
        "processor\t: 1\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\n\nHardware\t: BCM2835\n");
    put(sys / "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1500000\n");
    put(proc / "stat",
        "cpu  100 2 30 4000 5 0 6 0 0 0\ncpu0 50 1 15 2000 2 0 3 0 0 0\ncpu1 50 1 15 2000 3 0 3 0 0 0\n"
        "intr 1 2 3\nctxt 555\nbtime 1764184417\nprocesses 777\nprocs_running 2\nprocs_blocked 0\n");
    put(proc / "uptime", "12345.67 23456.78\n");
    put(proc / "net/dev",
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
        "colls "
        "carrier compressed\n"
        "    lo:    4000      40    0    0    0     0          0         0     4000      40    0    0    0   "
        "  0       "
        "0          0\n"
        "  eth0: 1000000    900    1    2    0     0          0         5   500000     600    3    4    0    "
        " 0       "
        "0          0\n");
    put(proc / "self/mountinfo",
        "27 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
        "22 27 0:21 / /proc rw,nosuid shared:13 - proc proc rw\n"
        "50 27 0:40 / /mnt/share rw shared:30 - nfs4 server:/export rw\n");
    put(proc / "mounts", "/dev/vda1 / ext4 rw,relatime 0 0\n");

    put(proc / "1/stat", statLine(1, "init", 'S', 0, 250, 150, 1, 173527040, 3000));
    put(proc / "1/cmdline", std::string("/sbin/init\0splash\0", 18));
    put(proc / "2/stat", statLine(2, "kthreadd", 'S', 0, 0, 10, 1, 0, 0));
    put(proc / "2/cmdline", "");
    put(proc / "4242/stat", statLine(4242, "my (weird) prog", 'R', 1, 1000, 500, 4, 1048576, 10));
    put(proc / "4242/cmdline", std::string("./my (weird) prog\0--flag\0", 25));
    // A process that exited after /proc was listed: its directory is there, its files are not.
    fs::create_directories(proc / "999");
    // Not processes.
    fs::create_directories(proc / "sys");
    put(proc / "12ab/stat", "garbage");
  }

  FactsOptions options() const {
    FactsOptions o;
    o.procRoot = proc;
    o.sysRoot = sys;
    o.clockTicksPerSecond = 100;
    o.pageSize = 4096;
    o.hostname = "node-1";
    o.statFs = [](const std::string& target) -> Result<FsUsage> {
      if (target == "/") return FsUsage{100 * 1024 * 1024, 40 * 1024 * 1024};
      return notFound("no such mount point " + target);
    };
    return o;
  }
};

TEST_CASE("memory, load, uptime and stat are read from the injected proc root", "[facts]") {
  Fixture f;
  const SystemFacts facts(f.options());

  const auto mem = facts.memory();
  REQUIRE(mem.ok());
  CHECK(mem->totalKb == 8041236);
  CHECK(mem->availableKb == 4000000);

  const auto load = facts.loadAvg();
  REQUIRE(load.ok());
  CHECK(load->load1 == Approx(1.5));
  CHECK(load->totalTasks == 412);

  const auto up = facts.uptime();
  REQUIRE(up.ok());
  CHECK(up->uptimeSeconds == Approx(12345.67));

  const auto stat = facts.systemStat();
  REQUIRE(stat.ok());
  CHECK(stat->bootTime == 1764184417);
  CHECK(stat->cpus.size() == 3);
  CHECK(stat->processesCreated == 777);

  const auto net = facts.networkDeviceStats();
  REQUIRE(net.ok());
  REQUIRE(net->size() == 2);
  CHECK((*net)[1].name == "eth0");
  CHECK((*net)[1].rxBytes == 1000000);
  CHECK((*net)[1].txDropped == 4);
}

TEST_CASE("the two-argument constructor takes the proc and sys roots", "[facts]") {
  Fixture f;
  const SystemFacts facts(f.proc, f.sys);
  const auto mem = facts.memory();
  REQUIRE(mem.ok());
  CHECK(mem->freeKb == 512000);
}

TEST_CASE("a CPU without 'cpu MHz' in cpuinfo takes its clock from sysfs cpufreq", "[facts]") {
  Fixture f;
  const auto cpus = SystemFacts(f.options()).cpuInfo();
  REQUIRE(cpus.ok());
  REQUIRE(cpus->size() == 2);
  CHECK((*cpus)[0].mhz == Approx(1500.0));
  CHECK((*cpus)[1].mhz == 0);  // no cpufreq for cpu1 in the fixture
  CHECK((*cpus)[0].flags == std::vector<std::string>{"fp", "asimd"});
}

TEST_CASE("processes are read from stat and cmdline, skipping ones that vanished", "[facts][processes]") {
  Fixture f;
  const auto procs = SystemFacts(f.options()).processes();
  REQUIRE(procs.ok());
  REQUIRE(procs->size() == 3);  // 999 vanished, 12ab and sys are not pids

  const Process& init = (*procs)[0];
  CHECK(init.pid == 1);
  CHECK(init.ppid == 0);
  CHECK(init.state == "S");
  CHECK(init.threads == 1);
  CHECK(init.cpuSeconds == Approx(4.0));  // (250 + 150) / 100
  CHECK(init.residentBytes == 3000ULL * 4096);
  CHECK(init.virtualBytes == 173527040);
  CHECK(init.command == "init");
  CHECK(init.args == "/sbin/init splash");

  CHECK((*procs)[1].pid == 2);
  CHECK((*procs)[1].args.empty());

  const Process& weird = (*procs)[2];
  CHECK(weird.pid == 4242);
  CHECK(weird.command == "my (weird) prog");
  CHECK(weird.state == "R");
  CHECK(weird.ppid == 1);
  CHECK(weird.threads == 4);
  CHECK(weird.cpuSeconds == Approx(15.0));
  CHECK(weird.args == "./my (weird) prog --flag");
}

TEST_CASE("the tick rate used for CPU seconds is injectable", "[facts][processes]") {
  Fixture f;
  auto options = f.options();
  options.clockTicksPerSecond = 1000;
  const auto procs = SystemFacts(options).processes();
  REQUIRE(procs.ok());
  CHECK((*procs)[0].cpuSeconds == Approx(0.4));
}

TEST_CASE("a garbage process stat fails the listing with DATA_LOSS naming the file", "[facts][processes]") {
  Fixture f;
  put(f.proc / "555/stat", "555 (x\n");
  put(f.proc / "555/cmdline", "");
  const auto procs = SystemFacts(f.options()).processes();
  REQUIRE_FALSE(procs.ok());
  CHECK(procs.status().code() == StatusCode::kDataLoss);
  CHECK_THAT(procs.status().message(), ContainsSubstring((f.proc / "555/stat").string() + " line 1"));
}

TEST_CASE("mounts come from mountinfo with sizes where statfs answers", "[facts][mounts]") {
  Fixture f;
  std::vector<std::string> queried;
  auto options = f.options();
  auto inner = options.statFs;
  options.statFs = [&](const std::string& target) {
    queried.push_back(target);
    return inner(target);
  };
  const auto mounts = SystemFacts(options).mounts();
  REQUIRE(mounts.ok());
  REQUIRE(mounts->size() == 3);
  CHECK((*mounts)[0].target == "/");
  CHECK((*mounts)[0].source == "/dev/vda1");
  CHECK((*mounts)[0].sizeBytes == 100u * 1024 * 1024);
  CHECK((*mounts)[0].availableBytes == 40u * 1024 * 1024);
  CHECK_FALSE((*mounts)[1].sizeBytes.has_value());  // statfs failed: no sizes, no error
  CHECK(std::find(queried.begin(), queried.end(), "/mnt/share") == queried.end());  // nfs4 never queried
}

TEST_CASE("mounts fall back to /proc/mounts and work without statfs", "[facts][mounts]") {
  Fixture f;
  fs::remove(f.proc / "self/mountinfo");
  auto options = f.options();
  options.statFs = nullptr;
  const auto mounts = SystemFacts(options).mounts();
  REQUIRE(mounts.ok());
  REQUIRE(mounts->size() == 1);
  CHECK((*mounts)[0].filesystem == "ext4");
  CHECK_FALSE((*mounts)[0].sizeBytes.has_value());
}

TEST_CASE("garbage fixture files give DATA_LOSS naming the file and line", "[facts]") {
  Fixture f;
  const SystemFacts facts(f.options());
  put(f.proc / "meminfo", "MemTotal 8041236 kB\n");
  put(f.proc / "loadavg", "\x7f\x45\x4c\x46\x02\x01\x01");
  put(f.proc / "cpuinfo", "processor : 0\n\xff\xfe\n");
  put(f.proc / "stat", "cpu 1 2 three 4\n");
  put(f.proc / "uptime", "-\n");
  put(f.proc / "net/dev", "nonsense\n");
  put(f.proc / "self/mountinfo", "27 1 253:0 / /\n");

  const auto check = [](const Status& s, const fs::path& file) {
    CHECK(s.code() == StatusCode::kDataLoss);
    CHECK_THAT(s.message(), ContainsSubstring(file.string()));
    CHECK_THAT(s.message(), ContainsSubstring(" line "));
  };
  check(facts.memory().status(), f.proc / "meminfo");
  check(facts.loadAvg().status(), f.proc / "loadavg");
  check(facts.cpuInfo().status(), f.proc / "cpuinfo");
  check(facts.systemStat().status(), f.proc / "stat");
  check(facts.uptime().status(), f.proc / "uptime");
  check(facts.networkDeviceStats().status(), f.proc / "net/dev");
  check(facts.mounts().status(), f.proc / "self/mountinfo");
}

TEST_CASE("a missing proc file is NOT_FOUND naming it", "[facts]") {
  TempDir empty;
  const SystemFacts facts(empty.path(), "/sys");
  const auto mem = facts.memory();
  REQUIRE_FALSE(mem.ok());
  CHECK(mem.status().code() == StatusCode::kNotFound);
  CHECK_THAT(mem.status().message(), ContainsSubstring((empty.path() / "meminfo").string()));
  CHECK(facts.processes().ok());
  CHECK(facts.processes()->empty());
}

TEST_CASE("the hostname is the injected one, else the kernel's", "[facts]") {
  Fixture f;
  CHECK(*SystemFacts(f.options()).hostname() == "node-1");
  const auto real = SystemFacts().hostname();
  REQUIRE(real.ok());
  CHECK_FALSE(real->empty());
}

// --- diskUsage --------------------------------------------------------------------------

const DiskUsageEntry* findEntry(const DiskUsage& du, const fs::path& p) {
  for (const auto& e : du.entries) {
    if (e.path == p.string()) return &e;
  }
  return nullptr;
}

template <typename Edit>
DiskUsageLimits limits(Edit edit) {
  DiskUsageLimits l;
  edit(l);
  return l;
}

struct Tree {
  TempDir dir;
  TempDir outside;
  fs::path root = dir / "data";

  Tree() {
    fs::create_directories(root / "a/deep/deeper");
    fs::create_directories(root / "b");
    writeFile(root / "top.txt", std::string(100, 'x'));
    writeFile(root / "a/one", std::string(1000, 'x'));
    writeFile(root / "a/deep/two", std::string(2000, 'x'));
    writeFile(root / "a/deep/deeper/three", std::string(3000, 'x'));
    writeFile(root / "b/four", std::string(4000, 'x'));
    writeFile(outside / "huge", std::string(1 << 20, 'x'));
    fs::create_directory_symlink(outside.path(), root / "b/link-to-outside");
  }
  static uint64_t statSize(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_size);
  }
};

TEST_CASE("disk usage sums each directory's subtree down to the requested depth", "[facts][du]") {
  Tree t;
  const SystemFacts facts;
  const auto du = facts.diskUsage(t.root, 1);
  REQUIRE(du.ok());
  CHECK_FALSE(du->truncated);
  REQUIRE(du->entries.size() == 3);  // data, data/a, data/b
  CHECK(du->entries[0].path == t.root.string());

  const auto* a = findEntry(*du, t.root / "a");
  const auto* b = findEntry(*du, t.root / "b");
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  const uint64_t aExpected = Tree::statSize(t.root / "a") + Tree::statSize(t.root / "a/deep") +
                             Tree::statSize(t.root / "a/deep/deeper") + 1000 + 2000 + 3000;
  CHECK(a->sizeBytes == aExpected);
  // The symlink counts as itself (the length of its target), never as the 1 MiB it points at.
  const uint64_t bExpected =
      Tree::statSize(t.root / "b") + 4000 + Tree::statSize(t.root / "b/link-to-outside");
  CHECK(b->sizeBytes == bExpected);
  CHECK(du->entries[0].sizeBytes == Tree::statSize(t.root) + 100 + aExpected + bExpected);
  for (const auto& e : du->entries) CHECK(e.error.empty());

  const auto shallow = facts.diskUsage(t.root, 0);
  REQUIRE(shallow.ok());
  REQUIRE(shallow->entries.size() == 1);
  CHECK(shallow->entries[0].sizeBytes == du->entries[0].sizeBytes);

  const auto all = facts.diskUsage(t.root, 10);
  REQUIRE(all.ok());
  CHECK(all->entries.size() == 5);
  CHECK(findEntry(*all, t.root / "b/link-to-outside") == nullptr);
}

TEST_CASE("disk usage counts a hard-linked file once", "[facts][du]") {
  Tree t;
  fs::create_hard_link(t.root / "b/four", t.root / "a/four-again");
  const auto du = SystemFacts().diskUsage(t.root, 0);
  REQUIRE(du.ok());
  fs::remove(t.root / "a/four-again");
  const auto without = SystemFacts().diskUsage(t.root, 0);
  REQUIRE(without.ok());
  CHECK(du->entries[0].sizeBytes == without->entries[0].sizeBytes);
}

TEST_CASE("disk usage stops at its limits and says it was truncated", "[facts][du]") {
  Tree t;
  const SystemFacts facts;
  const auto capped = facts.diskUsage(t.root, 10, limits([](DiskUsageLimits& l) { l.maxEntries = 2; }));
  REQUIRE(capped.ok());
  CHECK(capped->truncated);
  CHECK(capped->entries.size() == 2);

  const auto fewVisits = facts.diskUsage(t.root, 10, limits([](DiskUsageLimits& l) { l.maxVisited = 3; }));
  REQUIRE(fewVisits.ok());
  CHECK(fewVisits->truncated);

  const auto shallowNesting =
      facts.diskUsage(t.root, 10, limits([](DiskUsageLimits& l) { l.maxNesting = 1; }));
  REQUIRE(shallowNesting.ok());
  const auto* a = findEntry(*shallowNesting, t.root / "a");
  REQUIRE(a != nullptr);
  CHECK_THAT(a->error, ContainsSubstring("nesting deeper than 1"));
}

TEST_CASE("disk usage of a file or a symlink reports that one entry", "[facts][du]") {
  Tree t;
  const auto file = SystemFacts().diskUsage(t.root / "top.txt", 3);
  REQUIRE(file.ok());
  REQUIRE(file->entries.size() == 1);
  CHECK(file->entries[0].sizeBytes == 100);
  const auto link = SystemFacts().diskUsage(t.root / "b/link-to-outside", 3);
  REQUIRE(link.ok());
  REQUIRE(link->entries.size() == 1);
  CHECK(link->entries[0].sizeBytes == t.outside.path().string().size());
}

TEST_CASE("disk usage refuses relative paths and negative depths, and reports missing paths", "[facts][du]") {
  const SystemFacts facts;
  CHECK(facts.diskUsage("relative/dir", 1).status().code() == StatusCode::kInvalidArgument);
  CHECK(facts.diskUsage("/", -1).status().code() == StatusCode::kInvalidArgument);
  TempDir d;
  const auto missing = facts.diskUsage(d / "nope", 1);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), ContainsSubstring((d / "nope").string()));
}

// --- the real machine ---------------------------------------------------------------------

TEST_CASE("the real /proc gives plausible facts", "[facts][smoke]") {
  const SystemFacts facts;
  const auto mem = facts.memory();
  REQUIRE(mem.ok());
  CHECK(mem->totalKb > 0);
  CHECK(mem->freeKb <= mem->totalKb);
  CHECK(mem->availableKb <= mem->totalKb);

  const auto cpus = facts.cpuInfo();
  REQUIRE(cpus.ok());
  CHECK_FALSE(cpus->empty());

  const auto up = facts.uptime();
  REQUIRE(up.ok());
  CHECK(up->uptimeSeconds > 0);

  const auto stat = facts.systemStat();
  REQUIRE(stat.ok());
  CHECK(stat->bootTime > 1000000000);
  CHECK(stat->cpus.size() >= 2);  // the total and at least one CPU

  REQUIRE(facts.loadAvg().ok());
  REQUIRE(facts.networkDeviceStats().ok());

  const auto mounts = facts.mounts();
  REQUIRE(mounts.ok());
  CHECK(std::any_of(mounts->begin(), mounts->end(), [](const Mount& m) { return m.target == "/"; }));

  const auto procs = facts.processes();
  REQUIRE(procs.ok());
  const auto self =
      std::find_if(procs->begin(), procs->end(), [](const Process& p) { return p.pid == ::getpid(); });
  REQUIRE(self != procs->end());
  CHECK(self->command == "facts_test");
  CHECK(self->residentBytes > 0);
  CHECK(self->threads >= 1);
}

}  // namespace
}  // namespace keel::facts
