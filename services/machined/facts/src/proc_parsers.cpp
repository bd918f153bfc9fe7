#include "keel/facts/proc_parsers.h"

#include <algorithm>
#include <array>

#include "text.h"

namespace keel::facts {

using text::fields;
using text::LineReader;
using text::malformed;
using text::missing;
using text::parseNumber;
using text::trim;

namespace {

// Decodes the octal escapes ("\040" for a space) the kernel uses for whitespace and
// backslashes in mount paths; anything else passes through unchanged.
std::string unescapeOctal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const auto isOctal = [](char c) { return c >= '0' && c <= '7'; };
      if (isOctal(s[i + 1]) && isOctal(s[i + 2]) && isOctal(s[i + 3])) {
        const int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
        if (v <= 0xff) {
          out += static_cast<char>(v);
          i += 3;
          continue;
        }
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

Result<MemInfo> parseMemInfo(std::string_view content, std::string_view source) {
  MemInfo info;
  bool haveTotal = false;
  bool haveFree = false;
  bool haveAvailable = false;
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    const size_t colon = line.find(':');
    const auto value =
        colon == std::string_view::npos ? std::vector<std::string_view>{} : fields(line.substr(colon + 1));
    const bool unitOk = value.size() == 1 || (value.size() == 2 && value[1] == "kB");
    const auto number = value.empty() ? std::nullopt : parseNumber<uint64_t>(value[0]);
    if (colon == 0 || colon == std::string_view::npos || !unitOk || !number) {
      return malformed(source, lines.number(), "'<name>: <number> [kB]'", line);
    }
    const std::string_view key = trim(line.substr(0, colon));
    if (key == "MemTotal") {
      info.totalKb = *number;
      haveTotal = true;
    } else if (key == "MemFree") {
      info.freeKb = *number;
      haveFree = true;
    } else if (key == "MemAvailable") {
      info.availableKb = *number;
      haveAvailable = true;
    } else if (key == "Buffers") {
      info.buffersKb = *number;
    } else if (key == "Cached") {
      info.cachedKb = *number;
    } else if (key == "SwapTotal") {
      info.swapTotalKb = *number;
    } else if (key == "SwapFree") {
      info.swapFreeKb = *number;
    }
  }
  if (!haveTotal) return missing(source, "a MemTotal line");
  if (!haveFree) return missing(source, "a MemFree line");
  if (!haveAvailable) info.availableKb = info.freeKb;
  return info;
}

Result<LoadAvg> parseLoadAvg(std::string_view content, std::string_view source) {
  LineReader lines(content);
  std::string_view line;
  if (!lines.next(line)) return missing(source, "'<load1> <load5> <load15> <running>/<total> <last pid>'");
  const auto f = fields(trim(line));
  constexpr std::string_view kExpected = "'<load1> <load5> <load15> <running>/<total> <last pid>'";
  if (f.size() != 5) return malformed(source, 1, kExpected, line);
  const size_t slash = f[3].find('/');
  const auto l1 = parseNumber<double>(f[0]);
  const auto l5 = parseNumber<double>(f[1]);
  const auto l15 = parseNumber<double>(f[2]);
  const auto running =
      slash == std::string_view::npos ? std::nullopt : parseNumber<uint32_t>(f[3].substr(0, slash));
  const auto total =
      slash == std::string_view::npos ? std::nullopt : parseNumber<uint32_t>(f[3].substr(slash + 1));
  const auto lastPid = parseNumber<int32_t>(f[4]);
  if (!l1 || !l5 || !l15 || !running || !total || !lastPid) return malformed(source, 1, kExpected, line);
  return LoadAvg{*l1, *l5, *l15, *running, *total, *lastPid};
}

Result<std::vector<Cpu>> parseCpuInfo(std::string_view content, std::string_view source) {
  std::vector<Cpu> cpus;
  bool inCpu = false;  // the current block has a "processor" line
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    if (trim(line).empty()) {
      inCpu = false;
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return malformed(source, lines.number(), "'<name> : <value>'", line);
    const std::string_view key = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (key == "processor") {
      const auto index = parseNumber<int32_t>(value);
      if (!index) return malformed(source, lines.number(), "'processor : <number>'", line);
      cpus.push_back(Cpu{});
      cpus.back().processor = *index;
      inCpu = true;
      continue;
    }
    if (!inCpu) continue;  // preamble or trailer blocks that describe the board, not a CPU
    Cpu& cpu = cpus.back();
    if (key == "vendor_id") {
      cpu.vendorId = value;
    } else if (key == "model name") {
      cpu.modelName = value;
    } else if (key == "cpu MHz") {
      const auto mhz = parseNumber<double>(value);
      if (!mhz) return malformed(source, lines.number(), "'cpu MHz : <number>'", line);
      cpu.mhz = *mhz;
    } else if (key == "core id") {
      const auto id = parseNumber<int32_t>(value);
      if (!id) return malformed(source, lines.number(), "'core id : <number>'", line);
      cpu.coreId = *id;
    } else if (key == "cpu cores") {
      const auto cores = parseNumber<int32_t>(value);
      if (!cores) return malformed(source, lines.number(), "'cpu cores : <number>'", line);
      cpu.cpuCores = *cores;
    } else if (key == "flags" || key == "Features") {
      cpu.flags.clear();
      for (const auto flag : fields(value)) cpu.flags.emplace_back(flag);
    }
  }
  return cpus;
}

Result<ProcessStat> parseProcessStat(std::string_view content, std::string_view source) {
  constexpr std::string_view kExpected = "'<pid> (<comm>) <state> <ppid> …' with at least 24 fields";
  const std::string_view line = trim(content.substr(0, content.find('\n')));
  const size_t open = line.find(" (");
  // comm is the file name of the executable and may itself contain ") ", so only the
  // last ')' can end it.
  const size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) {
    return malformed(source, 1, kExpected, line);
  }
  ProcessStat stat;
  const auto pid = parseNumber<int32_t>(line.substr(0, open));
  if (!pid) return malformed(source, 1, kExpected, line);
  stat.pid = *pid;
  stat.comm = line.substr(open + 2, close - open - 2);
  // Fields after comm, numbered as in proc(5) from 3 (state): index = field - 3.
  const auto f = fields(line.substr(close + 1));
  if (f.size() < 22 || f[0].size() != 1) return malformed(source, 1, kExpected, line);
  stat.state = f[0][0];
  const auto ppid = parseNumber<int32_t>(f[1]);
  const auto utime = parseNumber<uint64_t>(f[11]);
  const auto stime = parseNumber<uint64_t>(f[12]);
  const auto threads = parseNumber<int32_t>(f[17]);
  const auto vsize = parseNumber<uint64_t>(f[20]);
  const auto rss = parseNumber<int64_t>(f[21]);  // signed in the kernel's format
  if (!ppid || !utime || !stime || !threads || !vsize || !rss) return malformed(source, 1, kExpected, line);
  stat.ppid = *ppid;
  stat.utimeTicks = *utime;
  stat.stimeTicks = *stime;
  stat.threads = *threads;
  stat.virtualBytes = *vsize;
  stat.residentPages = *rss < 0 ? 0 : static_cast<uint64_t>(*rss);
  return stat;
}

std::string parseCmdline(std::string_view content) {
  while (!content.empty() && content.back() == '\0') content.remove_suffix(1);
  std::string args(content);
  std::replace(args.begin(), args.end(), '\0', ' ');
  return args;
}

Result<std::vector<Mount>> parseMountInfo(std::string_view content, std::string_view source) {
  constexpr std::string_view kExpected =
      "'<id> <parent> <major:minor> <root> <mount point> <options> [optional…] - <type> <source> "
      "<super options>'";
  std::vector<Mount> mounts;
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    const auto f = fields(line);
    // The optional fields ("shared:1 master:2") vary in number; a lone "-" ends them.
    const auto sep = std::find(f.begin() + std::min<size_t>(f.size(), 6), f.end(), std::string_view("-"));
    if (f.size() < 6 || sep == f.end() || f.end() - sep < 3 || !parseNumber<uint64_t>(f[0]) ||
        !parseNumber<uint64_t>(f[1])) {
      return malformed(source, lines.number(), kExpected, line);
    }
    Mount m;
    m.target = unescapeOctal(f[4]);
    m.options = f[5];
    m.filesystem = unescapeOctal(sep[1]);
    m.source = unescapeOctal(sep[2]);
    if (f.end() - sep >= 4) m.superOptions = sep[3];
    mounts.push_back(std::move(m));
  }
  return mounts;
}

Result<std::vector<Mount>> parseProcMounts(std::string_view content, std::string_view source) {
  std::vector<Mount> mounts;
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    const auto f = fields(line);
    if (f.size() < 4) {
      return malformed(source, lines.number(), "'<source> <target> <type> <options> <freq> <passno>'", line);
    }
    Mount m;
    m.source = unescapeOctal(f[0]);
    m.target = unescapeOctal(f[1]);
    m.filesystem = unescapeOctal(f[2]);
    m.options = f[3];
    mounts.push_back(std::move(m));
  }
  return mounts;
}

Result<std::vector<NetDev>> parseNetDev(std::string_view content, std::string_view source) {
  std::vector<NetDev> devices;
  LineReader lines(content);
  std::string_view line;
  for (int header = 0; header < 2; ++header) {
    if (!lines.next(line)) return missing(source, "the two header lines");
    if (line.find('|') == std::string_view::npos) {
      return malformed(source, lines.number(), "a header line with '|' separated columns", line);
    }
  }
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    constexpr std::string_view kExpected = "'<interface>: <16 counters>'";
    // Interface names cannot contain ':', and a wide counter may touch the colon.
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return malformed(source, lines.number(), kExpected, line);
    const std::string_view name = trim(line.substr(0, colon));
    const auto f = fields(line.substr(colon + 1));
    if (name.empty() || f.size() < 16) return malformed(source, lines.number(), kExpected, line);
    uint64_t counters[16];
    for (size_t i = 0; i < 16; ++i) {
      const auto v = parseNumber<uint64_t>(f[i]);
      if (!v) return malformed(source, lines.number(), kExpected, line);
      counters[i] = *v;
    }
    // Columns: rx bytes packets errs drop fifo frame compressed multicast, then tx bytes
    // packets errs drop fifo colls carrier compressed.
    devices.push_back(NetDev{std::string(name), counters[0], counters[1], counters[2], counters[3],
                             counters[8], counters[9], counters[10], counters[11]});
  }
  return devices;
}

Result<SystemStat> parseProcStat(std::string_view content, std::string_view source) {
  SystemStat stat;
  struct Counter {
    std::string_view key;
    uint64_t* value;
    bool seen = false;
  };
  std::array<Counter, 5> counters = {{{"btime", &stat.bootTime},
                                      {"ctxt", &stat.contextSwitches},
                                      {"processes", &stat.processesCreated},
                                      {"procs_running", &stat.processesRunning},
                                      {"procs_blocked", &stat.processesBlocked}}};
  LineReader lines(content);
  std::string_view line;
  while (lines.next(line)) {
    const auto f = fields(line);
    if (f.empty()) continue;
    const std::string_view key = f[0];
    if (key.substr(0, 3) == "cpu") {
      // Older kernels have fewer columns; the first four exist since 2.4.
      if (f.size() < 5)
        return malformed(source, lines.number(), "'cpuN <user> <nice> <system> <idle> …'", line);
      uint64_t v[8] = {};
      for (size_t i = 1; i < f.size() && i <= 8; ++i) {
        const auto n = parseNumber<uint64_t>(f[i]);
        if (!n) return malformed(source, lines.number(), "'cpuN <user> <nice> <system> <idle> …'", line);
        v[i - 1] = *n;
      }
      stat.cpus.push_back(CpuTimes{std::string(key), v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]});
      continue;
    }
    const auto counter =
        std::find_if(counters.begin(), counters.end(), [&](const Counter& c) { return c.key == key; });
    if (counter == counters.end()) continue;  // intr, softirq and whatever later kernels add
    const auto n = f.size() == 2 ? parseNumber<uint64_t>(f[1]) : std::nullopt;
    if (!n) return malformed(source, lines.number(), "'" + std::string(key) + " <number>'", line);
    *counter->value = *n;
    counter->seen = true;
  }
  if (stat.cpus.empty() || stat.cpus.front().name != "cpu")
    return missing(source, "a first line 'cpu …' with the totals");
  for (const auto& c : counters) {
    if (!c.seen) return missing(source, "a '" + std::string(c.key) + " <number>' line");
  }
  return stat;
}

Result<Uptime> parseUptime(std::string_view content, std::string_view source) {
  constexpr std::string_view kExpected = "'<uptime seconds> <idle seconds>'";
  LineReader lines(content);
  std::string_view line;
  if (!lines.next(line)) return missing(source, kExpected);
  const auto f = fields(trim(line));
  const auto up = f.size() == 2 ? parseNumber<double>(f[0]) : std::nullopt;
  const auto idle = f.size() == 2 ? parseNumber<double>(f[1]) : std::nullopt;
  if (!up || !idle) return malformed(source, 1, kExpected, line);
  return Uptime{*up, *idle};
}

}  // namespace keel::facts
