// machined: owns the machine. Parses flags and runs a Node; see src/node.h.
#include <linux/capability.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "keel/common/clock.h"
#include "keel/common/heap.h"
#include "keel/common/stop_signals.h"
#include "keel/sandbox/policy.h"
#include "keel/sandbox/sandbox.h"
#include "keel/supervisor/spawner.h"
#include "src/boot/boot_timeline.h"
#include "src/boot/pid1.h"
#include "src/node/node.h"
#include "keel/common/status.h"

namespace keel::machined {
extern const std::string_view kSeccompPolicy;
}

namespace {

// machined runs entirely under its reviewed seccomp profile (TSYNC: every thread), with
// only the capabilities its work needs when it runs as root. Applied before any thread
// exists, since capabilities are per thread. Services are forked by the spawner, which
// stays outside; `keep` is the spawner's socket.
keel::Status confineMachined(int keep) {
  auto policy = keel::sandbox::parsePolicy(keel::machined::kSeccompPolicy);
  if (!policy.ok()) return policy.status().withContext("machined's seccomp.policy");
  keel::sandbox::SandboxOptions options;
  options.policy = std::move(policy).value();
  options.allThreads = true;
  options.keepFds = {keep};
  // Reading root-owned logs and files under the allowed roots, wiping services' state on
  // Reset, the kernel log for Dmesg, handing the socket directory to apid's group, and
  // stopping services, which run under their own uids.
  options.keepCapabilities = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_KILL, CAP_SYSLOG};
  return keel::sandbox::apply(options);
}

// The spawner outlives machined's re-exec for a reboot: its socket is passed down under
// this name, and the new image adopts it instead of forking another spawner, which would
// inherit the filter the new image runs under from the start.
constexpr const char* kSpawnerFdEnv = "KEEL_SPAWNER_FD";

// Before anything else in main: adopts the spawner of the image this one replaced, or
// forks a new one while the process has a single thread and no filter.
keel::Result<std::unique_ptr<keel::supervisor::Spawner>> startSpawner() {
  if (const char* inherited = std::getenv(kSpawnerFdEnv)) {
    const std::string fd = inherited;
    unsetenv(kSpawnerFdEnv);
    char* end = nullptr;
    const long n = std::strtol(fd.c_str(), &end, 10);
    if (fd.empty() || *end != '\0' || n < 3 || n > INT_MAX) {
      return keel::invalidArgument(std::string(kSpawnerFdEnv) + ": expected a descriptor number above 2, found '" +
                                   fd + "'");
    }
    return keel::supervisor::Spawner::adopt(static_cast<int>(n));
  }
  // Services are double-forked by the spawner and handed to machined this way, so that
  // machined reaps them as it would its own children.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return keel::internalError(std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + keel::errnoText(errno));
  }
  return keel::supervisor::Spawner::start();
}

#ifdef KEEL_TEST_HOOKS
// Test builds only: make a call machined's profile forbids, so a test can watch the
// filter kill it. Production builds do not contain this.
void forbiddenCallForTests() {
  const char* what = std::getenv("KEEL_TEST_FORBIDDEN_SYSCALL");
  if (what == nullptr) return;
  const std::string w = what;
  spdlog::warn("machined: test hook: attempting forbidden call {}", w);
  spdlog::default_logger()->flush();
  if (w == "socket-inet") {
    [[maybe_unused]] int fd = socket(AF_INET, SOCK_STREAM, 0);
  } else if (w == "socket-inet6") {
    [[maybe_unused]] int fd = socket(AF_INET6, SOCK_STREAM, 0);
  } else if (w == "ptrace") {
    [[maybe_unused]] long r = ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
  } else if (w == "mount") {
    [[maybe_unused]] int r = mount("none", "/tmp", "tmpfs", 0, nullptr);
  }
  spdlog::error("machined: test hook: forbidden call {} was not stopped", w);
}
#endif

// machined's command line, as parsed.
struct Flags {
  keel::machined::NodeOptions options;
  std::string root = "/";
  std::string config;
  std::vector<uid_t> allowUids;
  std::string level = "info";
  int settleMs = 1000;
  int graceMs = 10000;
  bool denyInvokingUser = false;
  std::string libexec;
  std::string backendsDir;
  std::string bootDir;
};

void addFlags(CLI::App& app, Flags& f) {
  app.add_option("--root", f.root, "Prefix of every path the node uses (/etc/keel, /var/lib/keel, /run/keel); "
                                 "a directory other than / runs an unprivileged node for tests and local clusters")
      ->capture_default_str();
  app.add_option("--config", f.config, "Machine config to install when the node has none stored yet "
                                     "(from `keelctl gen config`)")
      ->check(CLI::ExistingFile);
  app.add_option("--address", f.options.address, "The node's address (for example 127.0.1.1): its apid binds it "
                                               "and it names the node in replies")
      ->required()
      ->check([](const std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); });
  app.add_option("--api-port", f.options.apiPort, "The TCP port apid serves the API on, on --address")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--join-port", f.options.joinPort,
                 "The TCP port of the join listener: apid serves it on a control plane; a worker's apid joins "
                 "the control plane on it")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--allow-uid", f.allowUids, "A uid that may call machined.sock directly (repeatable); "
                                           "in --root mode the invoking user is always allowed");
  app.add_flag("--no-allow-invoking-user", f.denyInvokingUser,
               "In --root mode, do not add the invoking user to the allow-list (only the services machined "
               "started and --allow-uid may call)");
  app.add_option("--log-level", f.level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--kmsg", f.options.kmsgPath, "Kernel log device")->capture_default_str();
  app.add_option("--libexec", f.libexec, "Directory of the built-in service binaries (apid, trustd); "
                                       "default: the directory machined's executable is in");
  app.add_option("--backends-dir", f.backendsDir,
                 "Directory of the backend manifests (<name>.json) for the names in machine.backends; "
                 "default: <libexec>/backends");
  app.add_option("--boot-dir", f.bootDir,
                 "Directory of root slots and the boot pointer that Upgrade and Rollback write (on the OS image: "
                 "/var/lib/keel-boot, set by PID 1). For tests and local clusters: nothing boots from it, the "
                 "booted slot is 'factory' and the running image's version is <root>/usr/share/keel/image-version");
  app.add_option("--service-settle-ms", f.settleMs, "How long a service must stay up to count as running")
      ->capture_default_str();
  app.add_option("--service-stop-grace-ms", f.graceMs, "SIGTERM to SIGKILL grace period when stopping a service")
      ->capture_default_str();
  app.footer("Example: machined --root /tmp/node1 --config controlplane.json --address 127.0.1.1");
}

// The node's options from the flags; `self` is machined's own executable.
keel::machined::NodeOptions nodeOptions(const Flags& f, const std::string& self) {
  keel::machined::NodeOptions options = f.options;
  options.root = f.root;
  options.libexecDir = f.libexec.empty() ? std::filesystem::path(self).parent_path() : std::filesystem::path(f.libexec);
  options.backendsDir = f.backendsDir.empty() ? options.libexecDir / "backends" : std::filesystem::path(f.backendsDir);
  if (!f.config.empty()) options.configPath = f.config;
  options.allowedUids = f.allowUids;
  const bool rootMode = options.root != "/";
  if (rootMode && !f.denyInvokingUser) options.allowedUids.push_back(getuid());
  options.serviceSettleTime = std::chrono::milliseconds(f.settleMs);
  options.serviceStopGrace = std::chrono::milliseconds(f.graceMs);
  if (!f.bootDir.empty()) options.bootDir = f.bootDir;
  if (keel::machined::underPid1()) {
    // Booted from the OS image: the initramfs told PID 1 which root slot it booted.
    options.bootDir = "/var/lib/keel-boot";
    const char* slot = std::getenv("KEEL_BOOT_SLOT");
    options.bootedSlot = slot != nullptr ? slot : "factory";
    // The initramfs went back to the previous slot by itself: an event, like a rollback.
    if (const char* fellBack = std::getenv("KEEL_BOOT_FALLBACK")) options.bootFallback = fellBack;
    if (const char* initramfs = std::getenv("KEEL_INITRAMFS")) options.initramfs = initramfs;
    options.bootMark = keel::machined::bootMark;
    if (const char* steps = std::getenv("KEEL_BOOT_TIMELINE")) options.bootTimeline = steps;
  }
  return options;
}

// A reboot outside PID 1 re-executes machined from this thread, the one that forked the
// spawner (a child's death signal follows the thread that forked it). The new image runs
// under this image's filter from its first instruction, and adopts the spawner through
// the socket left open for it. Stop signals stay blocked across exec; the new image
// blocks them again anyway.
[[noreturn]] void reexec(const std::string& self, std::vector<std::string> originalArgs, int spawnerFd) {
  if (fcntl(spawnerFd, F_SETFD, 0) != 0) {
    spdlog::error("machined: cannot keep the spawner's socket across the re-exec: {}", keel::errnoText(errno));
    std::_Exit(1);
  }
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).rfind(std::string(kSpawnerFdEnv) + "=", 0) != 0) env.emplace_back(*e);
  }
  env.push_back(std::string(kSpawnerFdEnv) + "=" + std::to_string(spawnerFd));
  std::vector<char*> args;
  for (auto& a : originalArgs) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  execve(self.c_str(), args.data(), envp.data());
  spdlog::error("machined: re-exec of {} failed: {}", self, keel::errnoText(errno));
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  // On the OS image, PID 1 prepares the machine and stays PID 1; machined proper runs on
  // from here in its child (src/pid1.h).
  if (getpid() == 1) keel::machined::runAsPid1(argc, argv);
  keel::limitMallocArenas();
  // Descriptors leaked by whoever started machined must not reach its services; the
  // spawner's socket, when this image replaces one that had it, stays.
  int inheritedSpawner = -1;
  if (const char* fd = std::getenv(kSpawnerFdEnv)) inheritedSpawner = std::atoi(fd);
  if (inheritedSpawner > 3) syscall(SYS_close_range, 3U, static_cast<unsigned>(inheritedSpawner) - 1, 0U);
  syscall(SYS_close_range, inheritedSpawner >= 3 ? static_cast<unsigned>(inheritedSpawner) + 1 : 3U, ~0U, 0U);
  auto spawnerOr = startSpawner();
  if (!spawnerOr.ok()) {
    std::fprintf(stderr, "machined: no spawner: %s\n", spawnerOr.status().toString().c_str());
    return 1;
  }
  std::shared_ptr<keel::supervisor::Spawner> spawner = std::move(spawnerOr).value();
  // Files machined creates (logs, configs, keys) are its own unless made otherwise.
  umask(077);
  // Kept for the re-exec that a reboot outside PID 1 is.
  std::vector<std::string> originalArgs(argv, argv + argc);
  char self[PATH_MAX];
  const ssize_t selfLen = readlink("/proc/self/exe", self, sizeof self - 1);
  if (selfLen <= 0) {
    std::fprintf(stderr, "machined: cannot read /proc/self/exe\n");
    return 1;
  }
  self[selfLen] = '\0';

  CLI::App app{"machined: owns a Keel node's machine — its config, services, logs and power — and serves the "
               "machine API on the Unix socket <root>/run/keel/machined.sock."};
  Flags f;
  addFlags(app, f);
  CLI11_PARSE(app, argc, argv);

  auto logger = std::make_shared<spdlog::logger>("machined", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(f.level));

  keel::machined::NodeOptions options = nodeOptions(f, self);
  const bool rootMode = options.root != "/";
  if (getpid() != 1 && !rootMode && getuid() != 0) {
    spdlog::error("machined: a node with --root / must run as root; use --root DIR for an unprivileged node");
    return 1;
  }

  // SIGTERM/SIGINT stop the node; they are taken by a thread of their own with sigwait,
  // so the rest of machined never runs in a signal handler.
  const sigset_t stopSignals = keel::blockStopSignals();
  signal(SIGPIPE, SIG_IGN);

  // Before any thread starts (the node's first one is the supervisor's).
  if (const keel::Status confined = confineMachined(spawner->fd()); !confined.isOk()) {
    spdlog::error("machined: cannot confine machined: {}", confined.toString());
    return 1;
  }
  const keel::IdleHeapTrimmer trimmer;
  options.spawn = [spawner](const keel::supervisor::ServiceSpec& spec) { return spawner->spawn(spec); };
  options.lookupAccount = [spawner](const std::string& user) { return spawner->lookupAccount(user); };
  keel::SystemClock clock;
  keel::machined::Node node(options, clock);
  const keel::Status started = node.start();
  if (!started.isOk()) {
    spdlog::error("machined: the node did not start: {}", started.toString());
    return 1;
  }
#ifdef KEEL_TEST_HOOKS
  forbiddenCallForTests();
#endif
  static std::atomic<bool> stopSignalled{false};
  std::thread signals([&node, stopSignals] {
    int sig = 0;
    if (sigwait(&stopSignals, &sig) == 0) {
      stopSignalled = true;
      spdlog::info("machined: signal {} received", sig);
      node.requestStop(keel::machined::PowerAction::kShutdown);
    }
  });
  const auto action = node.run();
  // A stop signal that arrived while a reboot was under way wins over the reboot.
  if (action == keel::machined::PowerAction::kShutdown || stopSignalled.load()) {
    spdlog::info("machined: stopped");
    // The signal thread may still be waiting: a process exit ends it.
    signals.detach();
    std::_Exit(0);
  }
  signals.detach();
  if (keel::machined::underPid1()) {
    spdlog::info("machined: asking PID 1 to reboot");
    spdlog::default_logger()->flush();
    std::_Exit(keel::machined::kPid1RebootStatus);
  }
  spdlog::info("machined: re-executing for the reboot");
  spdlog::default_logger()->flush();
  reexec(self, std::move(originalArgs), spawner->fd());
}
