#include "keel/facts/system_facts.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "keel/common/fd_io.h"
#include "keel/facts/proc_parsers.h"

#include "text.h"
#include "keel/common/status.h"

namespace keel::facts {

namespace {

// procfs files are generated on read and report size 0, so the only bound is a cap;
// the largest real one (mountinfo on a busy container host) stays far below it.
constexpr size_t kMaxProcFileBytes = 16 * 1024 * 1024;

Status errnoStatus(int err, const std::string& what) {
  std::string message = what + ": " + errnoText(err);
  switch (err) {
    case ENOENT:
    case ESRCH:  // a process exited while its files were being read
    case ENOTDIR: return notFound(std::move(message));
    case EACCES:
    case EPERM: return permissionDenied(std::move(message));
    default: return internalError(std::move(message));
  }
}

Result<std::string> readProcFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return errnoStatus(errno, "cannot open " + path.string());
  std::string content;
  std::array<char, 16384> buf;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoStatus(errno, "cannot read " + path.string());
    }
    if (n == 0) break;
    if (content.size() + static_cast<size_t>(n) > kMaxProcFileBytes) {
      return Status(StatusCode::kResourceExhausted, "cannot read " + path.string() + ": expected at most " +
                                                        std::to_string(kMaxProcFileBytes) +
                                                        " bytes, found more");
    }
    content.append(buf.data(), static_cast<size_t>(n));
  }
  return content;
}

// Reads a file and hands it to a parser that names it in its messages.
template <typename Parser>
auto readAndParse(const std::filesystem::path& path, Parser parse)
    -> decltype(parse(std::string_view{}, "")) {
  KEEL_ASSIGN_OR_RETURN(const std::string content, readProcFile(path));
  return parse(content, path.string());
}

bool isAllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// statvfs on these can block for minutes on an unreachable server, or mount something.
bool mayBlockOnStatFs(std::string_view fsType) {
  static constexpr std::array<std::string_view, 9> kTypes = {"autofs", "nfs",  "nfs4",       "cifs", "smb3",
                                                             "smbfs",  "ceph", "fuse.sshfs", "9p"};
  return std::find(kTypes.begin(), kTypes.end(), fsType) != kTypes.end();
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Walks one tree for diskUsage with descriptors relative to their parent, so a path
// component swapped for a symlink during the walk is never followed.
class DiskUsageWalker {
 public:
  DiskUsageWalker(int depth, const DiskUsageLimits& limits, dev_t rootDev, DiskUsage& out)
      : depth_(depth), limits_(limits), rootDev_(rootDev), out_(out) {}

  // Sums the directory open at `fd` (taken over) at `level`; `errorEntry` is the
  // reported entry that collects errors of unreported descendants.
  uint64_t walk(int fd, const std::string& path, int level, size_t errorEntry, uint64_t ownSize) {
    size_t entry = errorEntry;
    bool reported = false;
    if (level <= depth_) {
      if (out_.entries.size() < limits_.maxEntries) {
        entry = out_.entries.size();
        reported = true;
        out_.entries.push_back(DiskUsageEntry{path, 0, {}});
      } else {
        out_.truncated = true;
      }
    }
    DirPtr dir(::fdopendir(fd));
    if (!dir) {
      recordError(entry, path + ": " + errnoText(errno));
      ::close(fd);
      if (reported) out_.entries[entry].sizeBytes = ownSize;
      return ownSize;
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* d = ::readdir(dir.get())) {
      const std::string_view name = d->d_name;
      if (name == "." || name == "..") continue;
      if (visited_ + names.size() >= limits_.maxVisited) {
        out_.truncated = true;
        stopped_ = true;
        break;
      }
      names.emplace_back(name);
    }
    if (errno != 0 && !stopped_) recordError(entry, path + ": " + errnoText(errno));
    std::sort(names.begin(), names.end());

    uint64_t total = ownSize;
    const int dfd = ::dirfd(dir.get());
    for (const auto& name : names) {
      ++visited_;
      const std::string childPath = path == "/" ? "/" + name : path + "/" + name;
      struct stat st {};
      if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) recordError(entry, childPath + ": " + errnoText(errno));
        continue;  // ENOENT: removed since it was listed
      }
      const uint64_t size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
      if (!S_ISDIR(st.st_mode)) {
        // Hard links share one inode and one set of blocks: count it once.
        if (st.st_nlink > 1 && !seenInodes_.insert({st.st_dev, st.st_ino}).second) continue;
        total += size;
        continue;
      }
      if (st.st_dev != rootDev_ && !limits_.crossFilesystems) continue;
      if (static_cast<size_t>(level) + 1 > limits_.maxNesting) {
        recordError(entry,
                    childPath + ": not descended, nesting deeper than " + std::to_string(limits_.maxNesting));
        total += size;
        continue;
      }
      const int childFd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      struct stat opened {};
      if (childFd < 0 || ::fstat(childFd, &opened) != 0 || opened.st_dev != st.st_dev ||
          opened.st_ino != st.st_ino) {
        const int err = childFd < 0 ? errno : 0;
        if (childFd >= 0) ::close(childFd);
        if (err != ENOENT) {
          recordError(entry,
                      childPath + ": " + (err != 0 ? errnoText(err) : "replaced while being read"));
        }
        total += size;
        continue;
      }
      total += walk(childFd, childPath, level + 1, entry, size);
      if (stopped_) break;
    }
    if (reported) out_.entries[entry].sizeBytes = total;
    return total;
  }

 private:
  void recordError(size_t entry, std::string message) {
    // The first error of a subtree says where to look; later ones add nothing but length.
    if (entry < out_.entries.size() && out_.entries[entry].error.empty())
      out_.entries[entry].error = std::move(message);
  }

  int depth_;
  const DiskUsageLimits& limits_;
  dev_t rootDev_;
  DiskUsage& out_;
  size_t visited_ = 0;
  bool stopped_ = false;
  std::set<std::pair<dev_t, ino_t>> seenInodes_;
};

}  // namespace

Result<FsUsage> statFs(const std::string& target) {
  struct statvfs st {};
  if (::statvfs(target.c_str(), &st) != 0) return errnoStatus(errno, "statvfs " + target);
  return FsUsage{static_cast<uint64_t>(st.f_blocks) * st.f_frsize,
                 static_cast<uint64_t>(st.f_bavail) * st.f_frsize};
}

SystemFacts::SystemFacts(FactsOptions options) : options_(std::move(options)) {
  if (options_.clockTicksPerSecond <= 0) options_.clockTicksPerSecond = ::sysconf(_SC_CLK_TCK);
  if (options_.pageSize == 0) options_.pageSize = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  KEEL_RELEASE_ASSERT(options_.clockTicksPerSecond > 0, "sysconf(_SC_CLK_TCK) must be positive");
}

namespace {
FactsOptions withRoots(std::filesystem::path procRoot, std::filesystem::path sysRoot) {
  FactsOptions options;
  options.procRoot = std::move(procRoot);
  options.sysRoot = std::move(sysRoot);
  return options;
}
}  // namespace

SystemFacts::SystemFacts(std::filesystem::path procRoot, std::filesystem::path sysRoot)
    : SystemFacts(withRoots(std::move(procRoot), std::move(sysRoot))) {}

Result<MemInfo> SystemFacts::memory() const {
  return readAndParse(options_.procRoot / "meminfo", parseMemInfo);
}

Result<LoadAvg> SystemFacts::loadAvg() const {
  return readAndParse(options_.procRoot / "loadavg", parseLoadAvg);
}

Result<std::vector<Cpu>> SystemFacts::cpuInfo() const {
  KEEL_ASSIGN_OR_RETURN(auto cpus, readAndParse(options_.procRoot / "cpuinfo", parseCpuInfo));
  for (auto& cpu : cpus) {
    if (cpu.mhz != 0) continue;
    // Arm's cpuinfo has no clock; cpufreq has it in kHz where a driver is loaded.
    const auto path = options_.sysRoot / "devices/system/cpu" / ("cpu" + std::to_string(cpu.processor)) /
                      "cpufreq/scaling_cur_freq";
    const auto content = readProcFile(path);
    if (!content.ok()) continue;
    if (const auto khz = text::parseNumber<uint64_t>(text::trim(*content)))
      cpu.mhz = static_cast<double>(*khz) / 1000.0;
  }
  return cpus;
}

Result<std::vector<Process>> SystemFacts::processes() const {
  DirPtr dir(::opendir(options_.procRoot.c_str()));
  if (!dir) return errnoStatus(errno, "cannot list " + options_.procRoot.string());
  std::vector<std::string> pids;
  errno = 0;
  while (const dirent* d = ::readdir(dir.get())) {
    if (isAllDigits(d->d_name)) pids.emplace_back(d->d_name);
  }
  if (errno != 0) return errnoStatus(errno, "cannot list " + options_.procRoot.string());
  dir.reset();

  const auto vanished = [](const Status& s) {
    return s.code() == StatusCode::kNotFound || s.code() == StatusCode::kPermissionDenied;
  };
  std::vector<Process> processes;
  processes.reserve(pids.size());
  for (const auto& pid : pids) {
    const auto base = options_.procRoot / pid;
    auto statText = readProcFile(base / "stat");
    if (!statText.ok()) {
      if (vanished(statText.status())) continue;
      return statText.status();
    }
    if (statText->empty()) continue;  // reaped between open and read
    KEEL_ASSIGN_OR_RETURN(const auto stat, parseProcessStat(*statText, (base / "stat").string()));
    auto cmdline = readProcFile(base / "cmdline");
    if (!cmdline.ok()) {
      if (vanished(cmdline.status())) continue;
      return cmdline.status();
    }
    Process p;
    p.pid = stat.pid;
    p.ppid = stat.ppid;
    p.state = std::string(1, stat.state);
    p.threads = stat.threads;
    p.cpuSeconds = static_cast<double>(stat.utimeTicks + stat.stimeTicks) /
                   static_cast<double>(options_.clockTicksPerSecond);
    p.residentBytes = stat.residentPages * options_.pageSize;
    p.virtualBytes = stat.virtualBytes;
    p.command = stat.comm;
    p.args = parseCmdline(*cmdline);
    processes.push_back(std::move(p));
  }
  std::sort(processes.begin(), processes.end(),
            [](const Process& a, const Process& b) { return a.pid < b.pid; });
  return processes;
}

Result<std::vector<Mount>> SystemFacts::mounts() const {
  auto parsed = readAndParse(options_.procRoot / "self/mountinfo", parseMountInfo);
  if (!parsed.ok() && parsed.status().code() == StatusCode::kNotFound) {
    parsed = readAndParse(options_.procRoot / "mounts", parseProcMounts);
  }
  KEEL_ASSIGN_OR_RETURN(auto mounts, std::move(parsed));
  if (!options_.statFs) return mounts;
  for (auto& m : mounts) {
    if (mayBlockOnStatFs(m.filesystem)) continue;
    // Unreachable targets (another namespace's paths, permission) just carry no sizes.
    const auto usage = options_.statFs(m.target);
    if (!usage.ok()) continue;
    m.sizeBytes = usage->sizeBytes;
    m.availableBytes = usage->availableBytes;
  }
  return mounts;
}

Result<DiskUsage> SystemFacts::diskUsage(const std::filesystem::path& path, int depth,
                                         const DiskUsageLimits& limits) const {
  if (!path.is_absolute())
    return invalidArgument("disk usage: expected an absolute path, got '" + path.string() + "'");
  if (depth < 0) return invalidArgument("disk usage: expected a depth >= 0, got " + std::to_string(depth));
  std::string display = path.lexically_normal().string();
  while (display.size() > 1 && display.back() == '/') display.pop_back();

  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errnoStatus(errno, "disk usage of " + display);
  const uint64_t ownSize = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  DiskUsage usage;
  if (!S_ISDIR(st.st_mode)) {
    usage.entries.push_back(DiskUsageEntry{display, ownSize, {}});
    return usage;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    usage.entries.push_back(DiskUsageEntry{display, ownSize, display + ": " + errnoText(err)});
    return usage;
  }
  DiskUsageWalker walker(depth, limits, st.st_dev, usage);
  walker.walk(fd, display, 0, 0, ownSize);
  return usage;
}

Result<std::vector<NetDev>> SystemFacts::networkDeviceStats() const {
  return readAndParse(options_.procRoot / "net/dev", parseNetDev);
}

Result<SystemStat> SystemFacts::systemStat() const {
  return readAndParse(options_.procRoot / "stat", parseProcStat);
}

Result<Uptime> SystemFacts::uptime() const {
  return readAndParse(options_.procRoot / "uptime", parseUptime);
}

Result<std::string> SystemFacts::hostname() const {
  if (options_.hostname) return *options_.hostname;
  std::array<char, HOST_NAME_MAX + 1> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return errnoStatus(errno, "gethostname");
  return std::string(buf.data());
}

}  // namespace keel::facts
