// keel_init: the initramfs's /init. Loads the kernel modules the root needs, finds the
// read-only root by its disk serial, mounts it and hands the machine to machined as PID 1.
// Static and libc-only: the initramfs holds nothing else (no shell, no busybox).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

constexpr const char* kModuleList = "/etc/modules.order";  // one module path a line, in load order
constexpr const char* kNewRoot = "/newroot";
constexpr const char* kRootSerial = "keel-root";
constexpr const char* kMachined = "/usr/libexec/keel/machined";
// virtio disks appear a moment after their driver loads.
constexpr int kDiskWaitMs = 10000;

void say(const std::string& line) {
  const std::string out = "keel-init: " + line + "\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, out.data(), out.size());
}

// Nothing can be fixed from here: say why on the console and let the kernel panic, which
// names the failure once more (init exiting) and reboots when panic= asks it to.
[[noreturn]] void fail(const std::string& what) {
  say("fatal: " + what);
  sync();
  _exit(1);
}

std::string errnoText() { return std::strerror(errno); }

bool readSmallFile(const std::string& path, std::string& out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  out.clear();
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return n == 0;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

void mountOrFail(const char* source, const char* target, const char* type, unsigned long flags,
                 const char* data = nullptr) {
  mkdir(target, 0755);
  if (mount(source, target, type, flags, data) != 0) {
    fail(std::string("cannot mount ") + type + " on " + target + ": " + errnoText());
  }
}

void loadModules() {
  std::string list;
  if (!readSmallFile(kModuleList, list)) fail(std::string("cannot read ") + kModuleList + ": " + errnoText());
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find('\n', start);
    if (end == std::string::npos) end = list.size();
    const std::string path = list.substr(start, end - start);
    start = end + 1;
    if (path.empty()) continue;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open module " + path + ": " + errnoText());
    // A module already loaded is fine. ENODEV: an accelerated variant for hardware this
    // CPU lacks (crc32c-intel without SSE4.2); the generic one after it does the work.
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) {
      if (errno != ENODEV) fail("cannot load module " + path + ": " + errnoText());
    }
    close(fd);
    // The module lives in the kernel now; its file would only hold memory until reboot.
    unlink(path.c_str());
  }
}

// The block device whose virtio serial is `serial` ("/dev/vda"), or empty.
std::string findDiskBySerial(const std::string& serial) {
  DIR* dir = opendir("/sys/block");
  if (dir == nullptr) return {};
  std::string found;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string value;
    if (readSmallFile(std::string("/sys/block/") + e->d_name + "/serial", value) && trim(value) == serial) {
      found = std::string("/dev/") + e->d_name;
      break;
    }
  }
  closedir(dir);
  return found;
}

std::string waitForDisk(const std::string& serial) {
  for (int waited = 0; waited < kDiskWaitMs; waited += 20) {
    std::string dev = findDiskBySerial(serial);
    if (!dev.empty() && access(dev.c_str(), F_OK) == 0) return dev;
    const timespec step{0, 20 * 1000 * 1000};
    nanosleep(&step, nullptr);
  }
  fail("no disk with serial '" + serial + "' appeared within " + std::to_string(kDiskWaitMs / 1000) + " s");
}

}  // namespace

int main() {
  mountOrFail("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC);
  // The kernel found no /dev/console in the archive: take the console now, so that every
  // message from here on (and machined's) reaches it.
  if (const int console = open("/dev/console", O_RDWR | O_NOCTTY); console >= 0) {
    dup2(console, STDIN_FILENO);
    dup2(console, STDOUT_FILENO);
    dup2(console, STDERR_FILENO);
    if (console > STDERR_FILENO) close(console);
  }
  mountOrFail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrFail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  loadModules();
  const std::string rootDev = waitForDisk(kRootSerial);
  mountOrFail(rootDev.c_str(), kNewRoot, "squashfs", MS_RDONLY | MS_NODEV);
  say("root " + rootDev + " mounted read-only; starting machined");
  // machined mounts its own /proc, /sys and /dev in the new root.
  umount2("/proc", MNT_DETACH);
  umount2("/sys", MNT_DETACH);
  umount2("/dev", MNT_DETACH);
  // The switch: the new root replaces / in this mount namespace. What is left of the
  // initramfs underneath is this program and an empty tree.
  if (chdir(kNewRoot) != 0) fail(std::string("chdir ") + kNewRoot + ": " + errnoText());
  if (mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) fail("cannot move the root to /: " + errnoText());
  if (chroot(".") != 0 || chdir("/") != 0) fail("cannot enter the new root: " + errnoText());
  char* const argv[] = {const_cast<char*>(kMachined), nullptr};
  // machined gets the environment the kernel gave init (HOME and any name=value of the
  // command line the kernel did not take), except TERM: the console is a serial log that
  // programs read, so it stays plain text.
  unsetenv("TERM");
  execve(kMachined, argv, environ);
  fail(std::string("cannot start ") + kMachined + ": " + errnoText());
}
