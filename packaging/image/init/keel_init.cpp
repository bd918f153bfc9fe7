// keel_init: the initramfs's /init. Loads the kernel modules the root needs, finds the
// read-only root by its disk serial, mounts it through dm-verity (a slot's only once its
// manifest's signature verifies) and hands the machine to machined as PID 1.
// A slot boots in two stages: the keel_init the machine's boot loader started chooses the
// slot and starts the slot's own kernel and initramfs with kexec (keel.slot=X on their
// command line); the slot's keel_init then mounts the slot's root.
// Static (libc, libcrypto): the initramfs holds nothing else (no shell, no busybox).
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <linux/reboot.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "block_devices.h"
#include "boot_pointer.h"
#include "init_io.h"
#include "root_trust.h"
#include "slot_kernel.h"
#include "verity_device.h"

namespace {

using keel::init::errnoText;

// The boot timeline's steps so far, handed to machined (KEEL_BOOT_TIMELINE).
std::string gTimeline;

void timelineStep(const std::string& step) {
  gTimeline += (gTimeline.empty() ? "" : ", ") + keel::init::bootMark(step);
}
using keel::init::readSmallFile;
using keel::init::say;

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
// Why slots were given up on the way to this boot, kept across the kexec or the reboot
// between the two stages until machined is told (KEEL_BOOT_FALLBACK).
constexpr const char* kFallbackNote = "/state/lib/keel-boot/fallback-note";
// What this initramfs is ("VERSION BUILD_ID", written by the build); machined reports it.
constexpr const char* kInitramfsVersion = "/etc/initramfs-version";
// The kernel and boot archive this initramfs boots with (see slot_kernel.h, BootIdentity).
constexpr const char* kBootIdentity = "/etc/initramfs-boot.json";
constexpr const char* kMachined = "/usr/libexec/keel/machined";
// The machine config machined stores on the state disk, and the disk it comes from first.
constexpr const char* kStoredConfig = "/state/lib/keel-etc/config.json";
constexpr const char* kConfigSerial = "keel-config";
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxManifestBytes = 65536;
// The factory root's verity parameters, written by the build (build-image.sh).
constexpr const char* kFactoryVerity = "/etc/factory-root.json";
// The device-mapper name of the verity device a slot's root is mounted from, + the slot.
constexpr const char* kVerityName = "keel-root-";
// virtio disks appear a moment after their driver loads.
constexpr int kDiskWaitMs = 10000;

// Nothing can be fixed from here: say why on the console and let the kernel panic, which
// names the failure once more (init exiting) and reboots when panic= asks it to.
[[noreturn]] void fail(const std::string& what) {
  say("fatal: " + what);
  sync();
  _exit(1);
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
  if (!readSmallFile(kPointer, text)) return Pointer{};
  const auto parsed = keel::machined::parseBootPointer(text);
  if (parsed.complete) return parsed.pointer;
  // A damaged pointer: the slot it falls back to, if it still names one, else the factory root.
  say("the boot pointer is damaged; booting slot " + parsed.pointer.fallback);
  return Pointer{parsed.pointer.fallback, parsed.pointer.fallback, -1};
}

// Written whole to a new file, synced, renamed over the old one: a power cut leaves one
// or the other.
void replaceFile(const std::string& path, const std::string& text) {
  const std::string next = path + ".new";
  const int fd = open(next.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || fsync(fd) != 0) {
    fail("cannot write " + next + ": " + errnoText());
  }
  close(fd);
  if (rename(next.c_str(), path.c_str()) != 0) fail("cannot replace " + path + ": " + errnoText());
  if (const int dir = open(kSlotDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

void writePointer(const Pointer& p) {
  replaceFile(kPointer, keel::machined::formatBootPointer(p));
}

// The reasons an earlier stage of this boot gave slots up for, removed from the state disk
// once read: they are told once.
std::string takeFallbackNote() {
  std::string note;
  if (!readSmallFile(kFallbackNote, note)) return {};
  unlink(kFallbackNote);
  return note;
}

void keepFallbackNote(const std::string& note) {
  if (note.empty()) {
    unlink(kFallbackNote);
  } else {
    replaceFile(kFallbackNote, note);
  }
}

void addReason(std::string& reasons, const std::string& reason) {
  reasons += (reasons.empty() ? "" : "; ") + reason;
}

// Leaves the state disk clean before the machine moves on (a kexec or a reboot).
void releaseState() {
  sync();
  if (umount2(kState, 0) != 0) say(std::string("cannot unmount the state disk: ") + errnoText());
}

// The image signing key of the machine config machined runs with: the one stored on the
// state disk (applied through the API) wins over the config disk's, as in machined's PID 1.
// Read once, when a slot is first booted.
std::optional<keel::init::SigningKey> signingKey(std::string& error) {
  static std::optional<keel::init::SigningKey> key;
  static std::string keyError;
  static bool read = false;
  if (!read) {
    read = true;
    std::string config;
    std::string source = kStoredConfig;
    if (!readSmallFile(kStoredConfig, config)) {
      const std::string disk = keel::machined::boot::findDiskBySerial(kConfigSerial);
      source = disk.empty() ? "no config disk" : "the config disk " + disk;
      if (disk.empty() || !keel::init::readHead(disk, config, kMaxConfigBytes)) config.clear();
    }
    if (config.empty()) {
      keyError = "no machine config to take the image signing key from (" + source + ")";
    } else if (const auto pem = keel::init::imageSigningKey(config, keyError)) {
      key = keel::init::SigningKey::fromPem(*pem, keyError);
    }
  }
  error = keyError;
  return key;
}

// A slot's manifest, once its signature verifies with the machine config's key: the
// slot's verity parameters and its kernel's and initramfs's digests, or why not.
keel::init::TrustedRoot trustedSlot(const std::string& slot) {
  const std::string base = std::string(kSlotDir) + "/slot-" + slot;
  keel::init::TrustedRoot out;
  const auto key = signingKey(out.error);
  if (!key) return out;
  std::string manifest, signature;
  if (!readSmallFile(base + ".manifest.json", manifest, kMaxManifestBytes)) {
    out.error = "cannot read its manifest " + base + ".manifest.json: " + errnoText();
  } else if (!readSmallFile(base + ".manifest.sig", signature, kMaxManifestBytes)) {
    out.error = "cannot read its signature " + base + ".manifest.sig: " + errnoText();
  } else {
    out = keel::init::trustSlotManifest(manifest, signature, *key);
  }
  return out;
}

// Sets up the verity device over a slot's root and tree with the parameters of its
// manifest (`trusted`, whose signature verified) and mounts it. Empty when the slot is
// mounted, else why not.
std::string mountSlot(const std::string& slot, const keel::init::TrustedRoot& trusted) {
  const std::string base = std::string(kSlotDir) + "/slot-" + slot;
  if (!trusted.params) return trusted.error;
  std::string error;
  struct stat root {};
  if (stat((base + ".squashfs").c_str(), &root) != 0)
    return "cannot find its root " + base + ".squashfs: " + errnoText();
  if (static_cast<uint64_t>(root.st_size) != trusted.params->dataBytes) {
    return "its root is " + std::to_string(root.st_size) + " bytes, its signed manifest says " +
           std::to_string(trusted.params->dataBytes);
  }
  std::string dataDev, hashDev;
  const int data = keel::init::attachLoop(base + ".squashfs", dataDev, error);
  const int hash = data < 0 ? -1 : keel::init::attachLoop(base + ".verity", hashDev, error);
  std::string node;
  if (hash >= 0)
    node = keel::init::openVerity(std::string(kVerityName) + slot, dataDev, hashDev, *trusted.params, error);
  // The verity device holds the loop devices now; without it, closing clears them.
  if (data >= 0) close(data);
  if (hash >= 0) close(hash);
  if (node.empty()) return error;
  if (mount(node.c_str(), kNewRoot, "squashfs", MS_RDONLY | MS_NODEV, nullptr) != 0) {
    return "cannot mount " + node + " (dm-verity over " + base + ".squashfs): " + errnoText();
  }
  return {};
}

std::string kernelCommandLine() {
  std::string cmdline;
  if (!readSmallFile("/proc/cmdline", cmdline)) fail("cannot read /proc/cmdline: " + errnoText());
  while (!cmdline.empty() && (cmdline.back() == '\n' || cmdline.back() == '\0')) cmdline.pop_back();
  return cmdline;
}

// The first stage of a slot's boot. A slot whose signed manifest names this boot's kernel
// and initramfs has its root mounted here (empty `why` and true `mounted`); any other's
// kernel and initramfs are checked against its manifest, loaded and started with kexec, and
// the reasons gathered so far (`fellBack`) wait on the state disk for the second stage.
// Returns only when the slot is mounted or cannot be, with why; `step` says which step failed
// ("mounted" or "started").
std::string startSlot(const std::string& slot, const std::string& fellBack, bool& mounted, std::string& step) {
  mounted = false;
  step = "started";
  const std::string base = std::string(kSlotDir) + "/slot-" + slot;
  const auto trusted = trustedSlot(slot);
  if (!trusted.params) return trusted.error;
  std::string running;
  const auto identity =
      readSmallFile(kBootIdentity, running) ? keel::init::parseBootIdentity(running) : std::nullopt;
  std::string differs = identity ? keel::init::differsFromRunning(base + ".initrd", trusted.kernel,
                                                                  trusted.initramfs, *identity)
                                 : std::string("this initramfs does not name its own boot");
  if (differs.empty()) {
    say("slot " + slot + " boots with this kernel and initramfs: no kexec");
    step = "mounted";
    const std::string why = mountSlot(slot, trusted);
    mounted = why.empty();
    return why;
  }
  say("slot " + slot + " needs its own kernel and initramfs (" + differs + ")");
  const std::string cmdline = keel::init::slotCommandLine(kernelCommandLine(), slot);
  std::string why =
      keel::init::loadSlotKernel(base + ".vmlinuz", trusted.kernel, base + ".initrd", trusted.initramfs, cmdline);
  if (!why.empty()) return why;
  keepFallbackNote(fellBack);
  say("starting slot " + slot + "'s own kernel and initramfs, checked against its signed manifest");
  timelineStep("slot " + slot + "'s kernel loaded");
  releaseState();
  syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, nullptr);
  fail("cannot start slot " + slot + "'s kernel (kexec): " + errnoText());
}

// The factory root: the root disk, its tree after the squashfs, the root hash the build
// wrote into this initramfs. There is nothing to fall back to below it.
void mountFactory(const std::string& rootDev) {
  std::string text;
  if (!readSmallFile(kFactoryVerity, text))
    fail(std::string("cannot read ") + kFactoryVerity + ": " + errnoText());
  const auto trusted = keel::init::factoryRoot(text);
  if (!trusted.params) fail(trusted.error);
  std::string error;
  const std::string node =
      keel::init::openVerity(std::string(kVerityName) + "factory", rootDev, rootDev, *trusted.params, error);
  if (node.empty()) fail("the factory root " + rootDev + " cannot be used: " + error);
  if (mount(node.c_str(), kNewRoot, "squashfs", MS_RDONLY | MS_NODEV, nullptr) != 0) {
    fail("cannot mount the root " + node + " (dm-verity over " + rootDev + "): " + errnoText());
  }
  say("root: " + rootDev + " (slot factory), verified by dm-verity and mounted read-only");
}

// The first stage: chooses the root. The pointer's slot while it has tries left or is
// confirmed, else the slot it falls back to, and the factory root when that fails too. A
// slot with another kernel or initramfs is started with kexec (startSlot does not return
// then). Returns the slot mounted and whether it is on trial; `fellBack` says why when it
// gave a slot up (machined records it).
std::pair<std::string, bool> mountRoot(const std::string& rootDev, bool haveState, std::string& fellBack) {
  mkdir(kNewRoot, 0755);
  Pointer p = haveState ? readPointer() : Pointer{};
  if (haveState) fellBack = takeFallbackNote();
  if (p.boot != "factory" && p.tries == 0) {
    addReason(fellBack, "slot " + p.boot + " never reached API-ready; went back to slot " + p.fallback);
    say("slot " + p.boot + " never reached API-ready; going back to slot " + p.fallback);
    p = Pointer{p.fallback, p.fallback, -1};
    writePointer(p);
  } else if (p.boot != "factory" && p.tries > 0) {
    --p.tries;
    writePointer(p);
    say("trying slot " + p.boot + " (" + std::to_string(p.tries) + " more tries after this boot)");
  }
  for (int attempt = 0; attempt < 2 && p.boot != "factory"; ++attempt) {
    bool mounted = false;
    std::string step;
    const std::string why = startSlot(p.boot, fellBack, mounted, step);
    if (mounted) {
      say("root: slot " + p.boot + ", verified by dm-verity and mounted read-only");
      return {p.boot, p.tries >= 0};
    }
    // A slot that is its own fallback (the one returned to earlier, given up now too)
    // leaves the factory root.
    const std::string next = p.fallback != p.boot ? p.fallback : "factory";
    addReason(fellBack, "slot " + p.boot + " could not be " + step + ": " + why + "; went back to slot " + next);
    say("slot " + p.boot + " cannot be " + step + ": " + why + "; going back to slot " + next);
    p = Pointer{next, next, -1};
    writePointer(p);
  }
  mountFactory(rootDev);
  return {"factory", false};
}

// The second stage, in the slot's own kernel and initramfs (keel.slot=SLOT): mounts the
// slot's root and returns whether the slot is on trial. A root that cannot be mounted gives
// the slot up and reboots: the boot loader's kernel then takes the slot the pointer falls
// back to (this initramfs knows its own build's factory root, not the machine's).
bool mountStartedSlot(const std::string& slot, bool haveState, std::string& fellBack) {
  mkdir(kNewRoot, 0755);
  if (!haveState) fail("slot " + slot + "'s kernel started, but the state disk cannot be mounted");
  fellBack = takeFallbackNote();
  const Pointer p = readPointer();
  if (p.boot != slot) {
    say("the boot pointer names slot " + p.boot + ", not " + slot + "; rebooting to start it");
    keepFallbackNote(fellBack);
  } else if (const std::string why = mountSlot(slot, trustedSlot(slot)); why.empty()) {
    say("root: slot " + slot + ", verified by dm-verity and mounted read-only");
    return p.tries >= 0;
  } else {
    const std::string next = p.fallback != slot ? p.fallback : "factory";
    say("slot " + slot + " cannot be mounted: " + why + "; going back to slot " + next);
    addReason(fellBack, "slot " + slot + " could not be mounted: " + why + "; went back to slot " + next);
    writePointer(Pointer{next, next, -1});
    keepFallbackNote(fellBack);
  }
  releaseState();
  reboot(RB_AUTOBOOT);
  fail("cannot reboot: " + errnoText());
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
  timelineStep("init started");
  mountOrFail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrFail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  loadModules();
  timelineStep("modules loaded");
  const std::string rootDev = waitForDisk(kRootSerial);
  timelineStep("disks found");
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
  // The second stage of a slot's boot, or the first of any boot.
  std::string slot = keel::init::slotOfCommandLine(kernelCommandLine());
  bool pending = false;
  if (!slot.empty()) {
    pending = mountStartedSlot(slot, haveState, fellBack);
  } else {
    std::tie(slot, pending) = mountRoot(rootDev, haveState, fellBack);
  }
  if (haveState) {
    // machined's PID 1 finds /var mounted and keeps it.
    if (mount(kState, (std::string(kNewRoot) + "/var").c_str(), nullptr, MS_MOVE, nullptr) != 0) {
      fail("cannot move the state disk to /var: " + errnoText());
    }
  }
  timelineStep("root mounted");
  setenv("KEEL_BOOT_TIMELINE", gTimeline.c_str(), 1);
  // PID 1 confirms a pending slot once apid listens, or reboots into the fallback.
  setenv("KEEL_BOOT_SLOT", slot.c_str(), 1);
  if (pending) setenv("KEEL_BOOT_PENDING", "1", 1);
  if (!fellBack.empty()) setenv("KEEL_BOOT_FALLBACK", fellBack.c_str(), 1);
  if (std::string initramfs; readSmallFile(kInitramfsVersion, initramfs)) {
    while (!initramfs.empty() && initramfs.back() == '\n') initramfs.pop_back();
    setenv("KEEL_INITRAMFS", initramfs.c_str(), 1);
  }
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
