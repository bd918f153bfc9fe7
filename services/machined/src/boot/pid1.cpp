#include "src/boot/pid1.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "src/boot/block_devices.h"
#include "src/boot/boot_pointer.h"
#include "src/boot/boot_timeline.h"
#include "keel/config/machine_config.h"
#include "keel/config/machine_network.h"

namespace keel::machined {

namespace {

namespace fs = std::filesystem;

constexpr const char* kStateSerial = "keel-state";
constexpr const char* kConfigSerial = "keel-config";
constexpr const char* kMke2fs = "/usr/sbin/mke2fs";
constexpr const char* kLibexec = "/usr/libexec/keel";
// The config disk's copy, handed to machined, which stores it on first boot.
constexpr const char* kBootConfigDir = "/run/keel-boot";
constexpr const char* kBootConfig = "/run/keel-boot/config.json";
// The stored machine config must survive reboots, so /etc/keel lives on the state disk.
constexpr const char* kPersistentEtc = "/var/lib/keel-etc";
constexpr size_t kMaxConfigBytes = 1 << 20;
// machined restarted more often than this within kRestartWindow: the node is broken.
constexpr int kMaxRestarts = 5;
constexpr auto kRestartWindow = std::chrono::seconds(60);
constexpr auto kDeviceWait = std::chrono::seconds(10);
// A slot booted for the first time since an upgrade must reach API-ready within this
// (KEEL_CONFIRM_TIMEOUT seconds on the kernel command line overrides it), or PID 1 reboots
// and the initramfs returns to the previous slot.
constexpr int kDefaultConfirmSeconds = 300;
constexpr int kApiPort = 50000;
constexpr const char* kPointer = "/var/lib/keel-boot/pointer";
constexpr const char* kPointerNew = "/var/lib/keel-boot/pointer.new";
// Processes still running at power-off get this long after SIGTERM.
constexpr auto kFinalGrace = std::chrono::seconds(3);

bool gUnderPid1 = false;
std::vector<std::string> gArgs;
std::vector<char*> gArgv;

// PID 1 writes to the console: fd 2, which the initramfs pointed at /dev/console.
void say(const std::string& line) {
  const std::string out = "keel-pid1: " + line + "\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, out.data(), out.size());
}


// A fault in PID 1 kills it and panics the kernel, whose message names neither the
// signal nor the program: say both first. Async-signal-safe (write, _exit only).
void onCrash(int sig) {
  char msg[96] = "keel-pid1: PID 1 crashed with signal ";
  size_t len = std::strlen(msg);
  char digits[4];
  int n = 0;
  for (int s = sig; n == 0 || s > 0; s /= 10) digits[n++] = static_cast<char>('0' + s % 10);
  while (n > 0) msg[len++] = digits[--n];
  const char tail[] = "; the kernel panics next\n";
  std::memcpy(msg + len, tail, sizeof tail - 1);
  len += sizeof tail - 1;
  [[maybe_unused]] auto w = write(STDERR_FILENO, msg, len);
  sync();
  _exit(128 + sig);
}

void installCrashHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onCrash;
  sigemptyset(&sa.sa_mask);
  for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS}) sigaction(sig, &sa, nullptr);
}

void resetCrashHandlers() {
  for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS}) signal(sig, SIG_DFL);
}

[[noreturn]] void die(const std::string& why) {
  say("fatal: " + why + "; the kernel panics next");
  sync();
  _exit(1);
}

void mountOrDie(const char* source, const char* target, const char* type, unsigned long flags, const char* data) {
  mkdir(target, 0755);
  if (mount(source, target, type, flags, data) != 0) {
    die(std::string("cannot mount ") + type + " on " + target + ": " + errnoText(errno));
  }
}

std::optional<std::string> readText(const fs::path& path, size_t max) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[8192];
  ssize_t n;
  while (out.size() < max && (n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// Runs a program of the image and waits for it; its exit status, or -1.
int runProgram(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    char* const envp[] = {nullptr};
    execve(argv[0], argv.data(), envp);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void mountState() {
  // The initramfs mounts a state disk that already has a filesystem (it holds the root
  // slots and the boot pointer) and moves it here.
  struct stat var {}, root {};
  if (stat("/var", &var) == 0 && stat("/", &root) == 0 && var.st_dev != root.st_dev) {
    say("state disk mounted on /var by the initramfs");
    return;
  }
  const std::string dev = boot::waitForDiskBySerial(kStateSerial, kDeviceWait);
  if (dev.empty()) {
    // The node still serves its API, but nothing it stores survives a reboot: say so loudly.
    say(std::string("WARNING: no state disk (a virtio disk with serial '") + kStateSerial +
        "'); /var is in memory and is lost at reboot");
    mountOrDie("tmpfs", "/var", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755");
    return;
  }
  if (!boot::hasExt4(dev)) {
    say("formatting the state disk " + dev + " (first boot)");
    const int rc = runProgram({kMke2fs, "-q", "-F", "-t", "ext4", "-L", "keel-state", dev});
    if (rc != 0) die("mke2fs " + dev + " failed with status " + std::to_string(rc));
  }
  mountOrDie(dev.c_str(), "/var", "ext4", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  say("state disk " + dev + " mounted on /var");
}

void mountFilesystems() {
  mountOrDie("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  mountOrDie("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  mountOrDie("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
  mountOrDie("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755");
  mountOrDie("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777");
  // The root is a squashfs and cannot be written anyway; the flag makes every write fail
  // with EROFS at the mount, before any filesystem code runs.
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
    die("cannot remount / read-only: " + errnoText(errno));
  }
  mountState();
  mkdir("/var/lib", 0755);
  if (mkdir(kPersistentEtc, 0700) != 0 && errno != EEXIST) die(std::string("cannot create ") + kPersistentEtc);
  mountOrDie(kPersistentEtc, "/etc/keel", nullptr, MS_BIND, nullptr);
}

// The config disk holds the machine config as JSON, padded with zero bytes to the disk's
// size. Copied to a root-only file in /run for machined.
std::optional<std::string> readConfigDisk() {
  const std::string dev = boot::findDiskBySerial(kConfigSerial);
  if (dev.empty()) return std::nullopt;
  auto text = readText(dev, kMaxConfigBytes);
  if (!text) die("cannot read the config disk " + dev + ": " + errnoText(errno));
  text->resize(std::strlen(text->c_str()));
  mkdir(kBootConfigDir, 0700);
  const int fd = open(kBootConfig, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 || write(fd, text->data(), text->size()) != static_cast<ssize_t>(text->size())) {
    die(std::string("cannot write ") + kBootConfig + ": " + errnoText(errno));
  }
  close(fd);
  say("machine config read from the config disk " + dev);
  return std::string(kBootConfig);
}

bool setAddress(int sock, const char* name, unsigned long request, uint32_t hostOrder) {
  ifreq req{};
  std::strncpy(req.ifr_name, name, IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&req.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(hostOrder);
  return ioctl(sock, request, &req) == 0;
}

bool bringUp(int sock, const char* name) {
  ifreq req{};
  std::strncpy(req.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(sock, SIOCGIFFLAGS, &req) != 0) return false;
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
  return ioctl(sock, SIOCSIFFLAGS, &req) == 0;
}

std::string dotted(uint32_t hostOrder) {
  in_addr a{htonl(hostOrder)};
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &a, buf, sizeof buf) ? buf : "?";
}

// Loopback, then each interface of the config. Returns the node's address: the first
// interface's, or 127.0.0.1 when the config names none.
std::string configureNetwork(const config::MachineNetwork& cfg) {
  const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket(AF_INET): " + errnoText(errno));
  if (!setAddress(sock, "lo", SIOCSIFADDR, 0x7F000001) || !setAddress(sock, "lo", SIOCSIFNETMASK, 0xFF000000) ||
      !bringUp(sock, "lo")) {
    die("cannot bring up the loopback interface: " + errnoText(errno));
  }
  std::string nodeAddress = "127.0.0.1";
  for (size_t i = 0; i < cfg.interfaces.size(); ++i) {
    const auto& itf = cfg.interfaces[i];
    const auto cidr = config::parseIpv4Cidr(itf.address);  // validated with the config
    const fs::path sysPath = fs::path("/sys/class/net") / itf.name;
    const auto deadline = std::chrono::steady_clock::now() + kDeviceWait;
    while (access(sysPath.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
      const timespec step{0, 20'000'000};
      nanosleep(&step, nullptr);
    }
    const uint32_t mask = cidr->prefixLength == 0 ? 0 : ~uint32_t{0} << (32 - cidr->prefixLength);
    if (!setAddress(sock, itf.name.c_str(), SIOCSIFADDR, cidr->address) ||
        !setAddress(sock, itf.name.c_str(), SIOCSIFNETMASK, mask) || !bringUp(sock, itf.name.c_str())) {
      // The node stays reachable through the others, if any; the console says why not this one.
      say("cannot configure interface " + itf.name + " with " + itf.address + ": " + errnoText(errno));
      continue;
    }
    if (itf.gateway) {
      rtentry route{};
      auto* dst = reinterpret_cast<sockaddr_in*>(&route.rt_dst);
      auto* gw = reinterpret_cast<sockaddr_in*>(&route.rt_gateway);
      auto* genmask = reinterpret_cast<sockaddr_in*>(&route.rt_genmask);
      dst->sin_family = gw->sin_family = genmask->sin_family = AF_INET;
      gw->sin_addr.s_addr = htonl(config::parseIpv4Cidr(*itf.gateway + "/32")->address);
      route.rt_flags = RTF_UP | RTF_GATEWAY;
      route.rt_dev = const_cast<char*>(itf.name.c_str());
      if (ioctl(sock, SIOCADDRT, &route) != 0) say("cannot add the default route via " + *itf.gateway + ": " + errnoText(errno));
    }
    say("interface " + itf.name + " up with " + dotted(cidr->address) + "/" + std::to_string(cidr->prefixLength));
    if (i == 0) nodeAddress = dotted(cidr->address);
  }
  close(sock);
  return nodeAddress;
}

// Whether a TCP socket listens on `port` (apid's API), from the kernel's socket tables.
bool listening(int port) {
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    const auto text = readText(table, 1 << 20);
    if (!text) continue;
    size_t start = text->find('\n');  // the header line
    while (start != std::string::npos && start + 1 < text->size()) {
      const size_t end = text->find('\n', start + 1);
      const std::string line = text->substr(start + 1, end == std::string::npos ? std::string::npos : end - start - 1);
      start = end;
      // "  0: 0F02000A:C350 00000000:0000 0A ...": local address:port (hex), remote, state 0A = LISTEN.
      char local[64] = {0}, remote[64] = {0}, state[8] = {0};
      if (std::sscanf(line.c_str(), " %*[^:]: %63s %63s %7s", local, remote, state) != 3) continue;
      const char* colon = std::strrchr(local, ':');
      if (colon != nullptr && std::strtol(colon + 1, nullptr, 16) == port && std::strcmp(state, "0A") == 0) return true;
    }
  }
  return false;
}

// Marks the booted slot as good: the pointer keeps it and drops its tries count.
bool confirmSlot(const std::string& slot) {
  auto text = readText(kPointer, 4096);
  if (!text) return false;
  BootPointer p = parseBootPointer(*text).pointer;
  p.boot = slot;
  p.tries = -1;
  const std::string out = formatBootPointer(p);
  const int fd = open(kPointerNew, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()) && fsync(fd) == 0;
  close(fd);
  return ok && rename(kPointerNew, kPointer) == 0;
}

// Stops what is left (machined has stopped its services), flushes the disks and powers
// off or reboots. Never returns.
[[noreturn]] void powerOff(int how) {
  say(how == RB_AUTOBOOT ? "rebooting" : "powering off");
  kill(-1, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kFinalGrace;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t pid = waitpid(-1, nullptr, WNOHANG);
    if (pid < 0 && errno == ECHILD) break;
    if (pid == 0) {
      const timespec step{0, 20'000'000};
      nanosleep(&step, nullptr);
    }
  }
  kill(-1, SIGKILL);
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  sync();
  umount2("/etc/keel", MNT_DETACH);
  if (umount2("/var", 0) != 0) mount(nullptr, "/var", nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
  sync();
  reboot(how);
  die("reboot(2) failed: " + errnoText(errno));
}

void buildChildArgs(const std::string& address, const std::optional<std::string>& configPath) {
  gArgs = {std::string(kLibexec) + "/machined", "--root", "/", "--address", address, "--libexec", kLibexec};
  if (configPath) {
    gArgs.push_back("--config");
    gArgs.push_back(*configPath);
  }
  gArgv.clear();
  for (auto& a : gArgs) gArgv.push_back(a.data());
  gArgv.push_back(nullptr);
}

// The config that decides the network is the one machined will use: a stored one wins
// (it may have been changed through the API), else the config disk's. Dies without one.
// Only its network section is read here: machined checks the whole config (keys and
// certificates, the costly part) when it starts, and says what is wrong with it.
std::optional<config::MachineNetwork> networkConfig(const std::optional<std::string>& bootConfig) {
  for (const std::string& path : {std::string("/etc/keel/config.json"), bootConfig.value_or("")}) {
    if (path.empty() || access(path.c_str(), F_OK) != 0) continue;
    auto loaded = config::readMachineNetworkFile(path);
    if (!loaded.ok()) die("the machine config " + path + " cannot be used: " + loaded.status().toString());
    return std::move(loaded).value();
  }
  die(std::string("no machine config: attach the config from `keelctl gen config` as a disk with serial '") +
      kConfigSerial + "'");
}

// The slot booted and, for the first boots after an upgrade, the trial it is on: it must
// serve the API by confirmBy or the node goes back to the previous slot.
struct SlotTrial {
  std::string slot;
  bool pending = false;
  int confirmSeconds = 0;
  std::chrono::steady_clock::time_point confirmBy;
};

SlotTrial slotTrial() {
  SlotTrial t;
  const char* slotEnv = std::getenv("KEEL_BOOT_SLOT");
  t.slot = slotEnv != nullptr ? slotEnv : "factory";
  t.pending = std::getenv("KEEL_BOOT_PENDING") != nullptr;
  t.confirmSeconds = kDefaultConfirmSeconds;
  if (const char* v = std::getenv("KEEL_CONFIRM_TIMEOUT"); v != nullptr && std::atoi(v) > 0) {
    t.confirmSeconds = std::atoi(v);
  }
  t.confirmBy = std::chrono::steady_clock::now() + std::chrono::seconds(t.confirmSeconds);
  return t;
}

// PID 1 inherits every orphan: reaps them all until `machined` ends, and returns its wait
// status. Meanwhile a slot on trial is kept once the API answers, or left by a reboot when
// its time runs out.
int reapUntilExit(pid_t machined, SlotTrial& trial, const sigset_t& chld) {
  int status = 0;
  for (;;) {
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == machined) return status;
    }
    if (pid < 0 && errno != EINTR) die("waitpid: " + errnoText(errno));
    if (trial.pending && listening(kApiPort)) {
      trial.pending = false;
      if (confirmSlot(trial.slot)) {
        say("slot " + trial.slot + " serves the API; it is kept");
      } else {
        say("slot " + trial.slot + " serves the API but the boot pointer cannot be updated: " + errnoText(errno));
      }
    }
    if (trial.pending && std::chrono::steady_clock::now() >= trial.confirmBy) {
      say("slot " + trial.slot + " did not serve the API within " + std::to_string(trial.confirmSeconds) +
          " s; rebooting into the previous slot");
      powerOff(RB_AUTOBOOT);
    }
    // Woken by the next child's exit, or after a moment to look at the trial again.
    const timespec wait = trial.pending ? timespec{0, 250'000'000} : timespec{3600, 0};
    sigtimedwait(&chld, nullptr, &wait);
  }
}

}  // namespace

bool underPid1() { return gUnderPid1; }

namespace {

// Marks a step of the boot timeline and adds it to the steps machined proper is handed
// (KEEL_BOOT_TIMELINE, begun by keel_init).
void timelineStep(const std::string& step) {
  const char* before = std::getenv("KEEL_BOOT_TIMELINE");
  std::string steps = before != nullptr ? before : "";
  steps += (steps.empty() ? "" : ", ") + bootMark(step);
  setenv("KEEL_BOOT_TIMELINE", steps.c_str(), 1);
}

}  // namespace

void runAsPid1(int& argc, char**& argv) {
  installCrashHandlers();
  umask(022);
  say("starting");
  timelineStep("machined started as PID 1");
  mountFilesystems();
  timelineStep("state disk ready");
#ifdef KEEL_TEST_HOOKS
  // Test builds only: a fault in PID 1, so a test can watch it reach the console.
  if (std::getenv("KEEL_TEST_PID1_FAULT") != nullptr) raise(SIGSEGV);
#endif
  const auto bootConfig = readConfigDisk();
  const auto cfg = networkConfig(bootConfig);
  if (cfg->hostname && sethostname(cfg->hostname->data(), cfg->hostname->size()) != 0) {
    say("cannot set the host name: " + errnoText(errno));
  }
  const std::string address = configureNetwork(*cfg);
  timelineStep("network up");
  buildChildArgs(address, bootConfig);

  // A slot on probation (first boots after an upgrade) must reach API-ready in time.
  SlotTrial trial = slotTrial();
  const std::string& slot = trial.slot;
  if (trial.pending) {
    say("slot " + slot + " is on trial: it must serve the API within " + std::to_string(trial.confirmSeconds) + " s");
  }
  // SIGCHLD is waited for with a timeout while a slot is on trial; blocked so it queues.
  sigset_t chld, previous;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &previous);

  std::deque<std::chrono::steady_clock::time_point> starts;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    while (!starts.empty() && now - starts.front() > kRestartWindow) starts.pop_front();
    if (static_cast<int>(starts.size()) >= kMaxRestarts) {
      // A slot on trial has a known-good one to go back to: the initramfs takes it at the
      // next boot, as when the trial time runs out.
      if (trial.pending) {
        say("machined failed " + std::to_string(kMaxRestarts) + " times within a minute on slot " + slot +
            "; rebooting into the previous slot");
        powerOff(RB_AUTOBOOT);
      }
      die("machined failed " + std::to_string(kMaxRestarts) + " times within a minute; giving up");
    }
    starts.push_back(now);
    const pid_t machined = fork();
    if (machined < 0) die("fork: " + errnoText(errno));
    if (machined == 0) {
      sigprocmask(SIG_SETMASK, &previous, nullptr);
      resetCrashHandlers();
      gUnderPid1 = true;
      argc = static_cast<int>(gArgs.size());
      argv = gArgv.data();
      return;
    }
    const int status = reapUntilExit(machined, trial, chld);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) powerOff(RB_POWER_OFF);
    if (WIFEXITED(status) && WEXITSTATUS(status) == kPid1RebootStatus) powerOff(RB_AUTOBOOT);
    if (WIFSIGNALED(status)) {
      say("machined was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) +
          "); starting it again");
    } else {
      say("machined exited with status " + std::to_string(WEXITSTATUS(status)) + "; starting it again");
    }
  }
}

}  // namespace keel::machined
