// keel_init: the initramfs's /init. Loads the kernel modules the root needs, finds the
// read-only root by its disk serial, mounts it and hands the machine to machined as PID 1.
// Static and libc-only: the initramfs holds nothing else (no shell, no busybox).
#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
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

#include "block_devices.h"
#include "boot_pointer.h"

namespace {

constexpr const char* kModuleList = "/etc/modules.order";  // one module path a line, in load order
constexpr const char* kNewRoot = "/newroot";
constexpr const char* kRootSerial = "keel-root";
constexpr const char* kStateSerial = "keel-state";
// The state disk, mounted here to choose the root slot, then moved to the new root's /var.
constexpr const char* kState = "/state";
// On the state disk: the root slots written by upgrades and the boot pointer (see
// packaging/image/README.md, "Root slots").
constexpr const char* kSlotDir = "/state/lib/keel-boot";
constexpr const char* kPointer = "/state/lib/keel-boot/pointer";
constexpr const char* kPointerNew = "/state/lib/keel-boot/pointer.new";
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

void mountOrFail(const char* source, const char* target, const char* type, unsigned long flags,
                 const char* data = nullptr) {
  mkdir(target, 0755);
  if (mount(source, target, type, flags, data) != 0) {
    fail(std::string("cannot mount ") + type + " on " + target + ": " + errnoText());
  }
}

void loadModules() {
  std::string list;
  if (!keel::machined::boot::readSmallFile(kModuleList, list)) fail(std::string("cannot read ") + kModuleList + ": " + errnoText());
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

std::string waitForDisk(const std::string& serial) {
  std::string dev = keel::machined::boot::waitForDiskBySerial(serial, std::chrono::milliseconds(kDiskWaitMs));
  if (dev.empty()) {
    fail("no disk with serial '" + serial + "' appeared within " + std::to_string(kDiskWaitMs / 1000) + " s");
  }
  return dev;
}

using Pointer = keel::machined::BootPointer;

Pointer readPointer() {
  std::string text;
  if (!keel::machined::boot::readSmallFile(kPointer, text)) return Pointer{};
  const auto parsed = keel::machined::parseBootPointer(text);
  if (parsed.complete) return parsed.pointer;
  // A damaged pointer: the slot it falls back to, if it still names one, else the factory root.
  say("the boot pointer is damaged; booting slot " + parsed.pointer.fallback);
  return Pointer{parsed.pointer.fallback, parsed.pointer.fallback, -1};
}

// Written whole to a new file, synced, renamed over the old one: a power cut leaves one
// or the other.
void writePointer(const Pointer& p) {
  const std::string text = keel::machined::formatBootPointer(p);
  const int fd = open(kPointerNew, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || fsync(fd) != 0) {
    fail(std::string("cannot write ") + kPointerNew + ": " + errnoText());
  }
  close(fd);
  if (rename(kPointerNew, kPointer) != 0) fail(std::string("cannot replace ") + kPointer + ": " + errnoText());
  if (const int dir = open(kSlotDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

// Mounts a slot's squashfs file through a read-only loop device. False when it cannot.
bool mountSlotFile(const std::string& file) {
  const int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (control < 0) {
    say("cannot open /dev/loop-control: " + errnoText());
    return false;
  }
  const int n = ioctl(control, LOOP_CTL_GET_FREE);
  close(control);
  if (n < 0) return false;
  const std::string dev = "/dev/loop" + std::to_string(n);
  const int backing = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  const int loop = open(dev.c_str(), O_RDWR | O_CLOEXEC);
  bool ok = backing >= 0 && loop >= 0;
  if (ok) {
    loop_config config{};
    config.fd = static_cast<unsigned>(backing);
    config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    ok = ioctl(loop, LOOP_CONFIGURE, &config) == 0;
  }
  if (ok) ok = mount(dev.c_str(), kNewRoot, "squashfs", MS_RDONLY | MS_NODEV, nullptr) == 0;
  if (!ok) say("cannot mount " + file + ": " + errnoText());
  if (backing >= 0) close(backing);
  if (loop >= 0) close(loop);
  return ok;
}

// Chooses and mounts the root: the pointer's slot while it has tries left or is confirmed,
// else the slot it falls back to. Returns the slot booted and whether it is unconfirmed;
// `fellBack` says why when it went back to the previous slot (machined records it).
std::pair<std::string, bool> mountRoot(const std::string& rootDev, bool haveState, std::string& fellBack) {
  mkdir(kNewRoot, 0755);
  Pointer p = haveState ? readPointer() : Pointer{};
  if (p.boot != "factory" && p.tries == 0) {
    fellBack = "slot " + p.boot + " never reached API-ready; went back to slot " + p.fallback;
    say("slot " + p.boot + " never reached API-ready; going back to slot " + p.fallback);
    p = Pointer{p.fallback, p.fallback, -1};
    writePointer(p);
  } else if (p.boot != "factory" && p.tries > 0) {
    --p.tries;
    writePointer(p);
    say("trying slot " + p.boot + " (" + std::to_string(p.tries) + " more tries after this boot)");
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (p.boot == "factory") break;
    if (mountSlotFile(std::string(kSlotDir) + "/slot-" + p.boot + ".squashfs")) {
      say("root: slot " + p.boot + ", mounted read-only");
      return {p.boot, p.tries >= 0};
    }
    fellBack = "slot " + p.boot + " could not be mounted; went back to slot " + p.fallback;
    say("slot " + p.boot + " cannot be mounted; going back to slot " + p.fallback);
    p = Pointer{p.fallback, p.fallback, -1};
    writePointer(p);
  }
  if (mount(rootDev.c_str(), kNewRoot, "squashfs", MS_RDONLY | MS_NODEV, nullptr) != 0) {
    fail("cannot mount the root " + rootDev + ": " + errnoText());
  }
  say("root: " + rootDev + " (slot factory), mounted read-only");
  return {"factory", false};
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
  // Every virtio disk is probed together: once the root disk is there, so is the state
  // disk, if there is one. A blank one is formatted by machined's PID 1 on first boot.
  const std::string stateDev = keel::machined::boot::findDiskBySerial(kStateSerial);
  bool haveState = false;
  if (!stateDev.empty() && keel::machined::boot::hasExt4(stateDev)) {
    mkdir(kState, 0755);
    haveState = mount(stateDev.c_str(), kState, "ext4", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
    if (!haveState) say("cannot mount the state disk " + stateDev + ": " + errnoText());
  }
  std::string fellBack;
  const auto [slot, pending] = mountRoot(rootDev, haveState, fellBack);
  if (haveState) {
    // machined's PID 1 finds /var mounted and keeps it.
    if (mount(kState, (std::string(kNewRoot) + "/var").c_str(), nullptr, MS_MOVE, nullptr) != 0) {
      fail("cannot move the state disk to /var: " + errnoText());
    }
  }
  // PID 1 confirms a pending slot once apid listens, or reboots into the fallback.
  setenv("KEEL_BOOT_SLOT", slot.c_str(), 1);
  if (pending) setenv("KEEL_BOOT_PENDING", "1", 1);
  if (!fellBack.empty()) setenv("KEEL_BOOT_FALLBACK", fellBack.c_str(), 1);
  say("starting machined");
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
