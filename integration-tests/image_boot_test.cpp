// The OS image booted under QEMU: machined as PID 1 brings the node up from a config
// disk, apid serves the API through a forwarded loopback port, and the API powers it off.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <map>
#include <thread>

#include "image_vm.h"

namespace {

using namespace keel::integration;
using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

// TCG on two shared cores: a boot takes ~10-20 s; the margin is for a loaded CI machine.
constexpr auto kBootTimeout = 180s;

// Prints a boot's timeline from its console (the keel-boot lines) and the time from QEMU's
// start to the first answered API call.
void printBootTimeline(const std::string& which, const std::string& console, std::chrono::milliseconds ready) {
  std::printf("image: %s: power-on to the first answered API call %.1f s\n", which.c_str(),
              static_cast<double>(ready.count()) / 1000.0);
  size_t at = 0;
  while ((at = console.find("keel-boot: ", at)) != std::string::npos) {
    const size_t end = console.find('\n', at);
    std::printf("image:   %s\n", console.substr(at + 11, end - at - 11).c_str());
    at = end;
  }
}

TEST_CASE("the image boots under QEMU and serves the API from a read-only root until shut down", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false);
  const auto ready = vm.waitForApi(kBootTimeout);
  REQUIRE(ready);
  printBootTimeline("first boot (blank state disk)", vm.serial(), *ready);
  CHECK_THAT(vm.serial(), ContainsSubstring("formatting the state disk"));
  // The factory root is read through once by dm-verity before it is mounted.
  CHECK_THAT(vm.serial(), ContainsSubstring("(slot factory), verified by dm-verity and mounted read-only"));
  if (const auto at = vm.serial().find("keel-init: verified "); at != std::string::npos) {
    std::printf("image: %s\n", vm.serial().substr(at, vm.serial().find('\n', at) - at).c_str());
  }
  CHECK_THAT(vm.serial(), ContainsSubstring("interface eth0 up with 10.0.2.15/24"));

  const auto version = vm.keelctl({"version"});
  CHECK(version.exitCode == 0);
  const auto logs = vm.keelctl({"logs", "machined"});
  CHECK(logs.exitCode == 0);
  CHECK_THAT(logs.out, ContainsSubstring("node 10.0.2.15 is up"));
  const auto dmesg = vm.keelctl({"dmesg"});
  CHECK(dmesg.exitCode == 0);
  CHECK_THAT(dmesg.out, ContainsSubstring("Linux version"));
  const auto services = vm.keelctl({"services"});
  INFO(services.out << services.err);
  CHECK(services.exitCode == 0);
  CHECK_THAT(services.out, ContainsSubstring("apid"));
  CHECK_THAT(services.out, ContainsSubstring("running"));
  // timed, the reference extension, ships in the image and runs from its manifest under
  // its own profile; it answers through apid.
  keel::testing::ProcessResult time;
  CHECK(keel::testing::eventually(
      [&] {
        time = vm.keelctl({"time"});
        return time.exitCode == 0;
      },
      30s));
  INFO(time.out << time.err << vm.keelctl({"services"}).out << vm.keelctl({"events"}).out);
  CHECK_THAT(time.out, ContainsSubstring("Z"));
  CHECK_THAT(vm.keelctl({"services"}).out, ContainsSubstring("timed"));

  // The root is the read-only squashfs the build made. Every path-taking API may now look
  // anywhere in the root, and an extension tries to write over a file of the root with a
  // program the image ships (mke2fs -F formats any file it is given). The config is stored
  // on the state disk; the node reboots into it, on the same state disk.
  const auto mounts = vm.keelctl({"mounts"});
  INFO(mounts.out << mounts.err);
  CHECK(mounts.exitCode == 0);
  CHECK_THAT(mounts.out, ContainsSubstring("squashfs"));
  auto config = vm.config();
  config["machine"]["files"] = {{"allowedRoots", {"/"}}};
  config["machine"]["extensions"] = nlohmann::json::array(
      {{{"name", "writer"}, {"command", "/usr/sbin/mke2fs"}, {"args", {"-F", "-q", "/usr/libexec/keel/apid"}}}});
  const size_t before = vm.serial().size();
  const auto rebootStarted = std::chrono::steady_clock::now();
  const auto applied = vm.keelctl({"apply-config", vm.writeConfig(config, "writer.json").string(), "--mode", "reboot"});
  INFO(applied.out << applied.err);
  CHECK(applied.exitCode == 0);
  REQUIRE(vm.waitForSerial("keel-pid1: rebooting", 60s, before));
  REQUIRE(vm.waitForApi(kBootTimeout, before));
  std::printf("image: reboot to API-ready %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - rebootStarted).count());
  const std::string second = vm.serial().substr(before);
  // The disk now has a filesystem: the initramfs mounts it (to read the boot pointer).
  CHECK_THAT(second, ContainsSubstring("keel-pid1: state disk mounted on /var by the initramfs"));
  CHECK_THAT(second, !ContainsSubstring("formatting the state disk"));

  // The write failed because the root is read-only, not for want of permission.
  CHECK(keel::testing::eventually([&] {
    return vm.keelctl({"logs", "writer"}).out.find("Read-only file system") != std::string::npos;
  }, 30s));
  // Reading through the API gives back exactly what the build put in the root.
  const auto manifest = vm.keelctl({"read", "/usr/share/keel/manifest.txt"});
  CHECK(manifest.exitCode == 0);
  CHECK(manifest.out == keel::testing::readFile(std::filesystem::path(KEEL_IMAGE_DIR) / "manifest.txt"));
  const auto ls = vm.keelctl({"ls", "/usr/libexec/keel"});
  CHECK(ls.exitCode == 0);
  CHECK_THAT(ls.out, ContainsSubstring("apid"));
  CHECK(vm.keelctl({"usage", "/usr"}).exitCode == 0);

  const auto shutdown = vm.keelctl({"shutdown", "--yes"});
  INFO(shutdown.out << shutdown.err);
  CHECK(shutdown.exitCode == 0);
  // Powered off: QEMU exits by itself, and the console says it was a power-off, not a panic.
  CHECK(vm.waitForExit(60s));
  CHECK_THAT(vm.serial(), ContainsSubstring("keel-pid1: powering off"));
  CHECK_THAT(vm.serial(), !ContainsSubstring("Kernel panic"));

  // Powered on again: a later boot, from QEMU's start to the first answered call.
  const size_t off = vm.serial().size();
  vm.powerOn();
  const auto later = vm.waitForApi(kBootTimeout, off);
  REQUIRE(later);
  printBootTimeline("later boot", vm.serial().substr(off), *later);
  // The timeline is in the kernel log and, whole, an event.
  CHECK_THAT(vm.keelctl({"dmesg"}).out, ContainsSubstring("keel-boot:") && ContainsSubstring("s apid listening"));
  const auto events = vm.keelctl({"events"});
  INFO(events.out);
  CHECK_THAT(events.out, ContainsSubstring("timeline") && ContainsSubstring("init started") &&
                             ContainsSubstring("state disk ready") && ContainsSubstring("apid listening"));
  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
}

TEST_CASE("a machined that keeps crashing is reported on the console before the kernel panics", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
#ifndef KEEL_IMAGE_HAS_TEST_HOOKS
  SKIP("machined was built without KEEL_TEST_HOOKS: nothing makes it crash");
#endif
  // Test builds of machined make a call their seccomp profile forbids when this is set
  // (the kernel hands name=value words of its command line to init's environment): the
  // filter kills machined every time PID 1 starts it.
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/true, "KEEL_TEST_FORBIDDEN_SYSCALL=socket-inet");
  CHECK(vm.waitForSerial("keel-pid1: machined was killed by signal 31", kBootTimeout));
  CHECK(vm.waitForSerial("keel-pid1: fatal: machined failed 5 times within a minute; giving up", kBootTimeout));
  CHECK(vm.waitForSerial("Kernel panic", 60s));
  // panic=-1 with -no-reboot: the panic ends QEMU.
  CHECK(vm.waitForExit(60s));
}

// A second build of the root: the build's root, changed by `change` (run in the unpacked
// root), packed again into `out`.
void packRoot(const keel::testing::TempDir& dir, const std::string& change, const std::filesystem::path& out) {
  const auto root = dir / "root";
  const auto copy = keel::testing::run({"cp", "-a", (std::filesystem::path(KEEL_IMAGE_DIR) / "root.d").string(),
                                        root.string()});
  REQUIRE(copy.exitCode == 0);
  const auto changed = keel::testing::run({"sh", "-c", "cd '" + root.string() + "' && " + change});
  REQUIRE(changed.exitCode == 0);
  const auto packed = keel::testing::run({"/usr/bin/mksquashfs", root.string(), out.string(), "-comp", "zstd",
                                          "-all-root", "-noappend", "-quiet", "-no-progress"},
                                         {.workingDirectory = std::nullopt,
                                          .extraEnv = {{"PATH", "/usr/sbin:/sbin:/usr/bin:/bin"}},
                                          .stdinData = "",
                                          .timeout = 120s});
  INFO(packed.err);
  REQUIRE(packed.exitCode == 0);
  std::filesystem::remove_all(root);
}

// The build's image version (its manifest's), and one just above it.
std::string factoryVersion() {
  const auto shown = keel::testing::run({KEEL_IMAGE_PACK_PATH, "show", (std::filesystem::path(KEEL_IMAGE_DIR) /
                                                                         "keel.img").string()});
  INFO(shown.err);
  REQUIRE(shown.exitCode == 0);
  return nlohmann::json::parse(shown.out)["version"].get<std::string>();
}

std::string factoryBuildId() {
  const auto shown = keel::testing::run({KEEL_IMAGE_PACK_PATH, "show", (std::filesystem::path(KEEL_IMAGE_DIR) /
                                                                         "keel.img").string()});
  REQUIRE(shown.exitCode == 0);
  return nlohmann::json::parse(shown.out)["build_id"].get<std::string>();
}

std::string nextVersion(const std::string& version) {
  unsigned major = 0, minor = 0, patch = 0;
  REQUIRE(std::sscanf(version.c_str(), "%u.%u.%u", &major, &minor, &patch) == 3);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch + 1);
}

// A file added to an initramfs.
struct InitramfsFile {
  std::string path;  // in the archive
  std::string content;
  mode_t mode = 0644;
};

// The build's initramfs with `files` in a second archive after it, which the kernel unpacks
// over the first: how a test makes a slot's own initramfs differ from the factory's.
std::filesystem::path initramfsWith(const keel::testing::TempDir& dir, const std::string& name,
                                    const std::vector<InitramfsFile>& files) {
  const auto extra = dir / (name + ".d");
  for (const auto& file : files) {
    std::filesystem::create_directories((extra / file.path).parent_path());
    writeFile(extra / file.path, file.content);
    chmod((extra / file.path).c_str(), file.mode);
  }
  const auto out = dir / name;
  std::filesystem::copy_file(std::filesystem::path(KEEL_IMAGE_DIR) / "initrd.img", out);
  const auto appended = keel::testing::run(
      {"sh", "-c", "cd '" + extra.string() + "' && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | "
                   "gzip -n >> '" + out.string() + "'"});
  INFO(appended.err);
  REQUIRE(appended.exitCode == 0);
  return out;
}

// A second build as an image file: the build's kernel and initramfs (or `initramfs`), its
// root changed by `change`, a dm-verity tree made for that root, under `version`.
void packImage(const keel::testing::TempDir& dir, const std::string& change, const std::string& version,
               const std::filesystem::path& out, const std::filesystem::path& initramfs = {}) {
  const std::filesystem::path image(KEEL_IMAGE_DIR);
  packRoot(dir, change, dir / "root.squashfs");
  const std::string salt(64, '5');
  const auto verity = keel::testing::run(
      {"veritysetup", "format", "--no-superblock", "--salt=" + salt, (dir / "root.squashfs").string(),
       (dir / "root.verity").string()},
      {.workingDirectory = std::nullopt, .extraEnv = {{"PATH", "/usr/sbin:/sbin:/usr/bin:/bin"}}, .stdinData = "",
       .timeout = 120s});
  INFO(verity.out << verity.err);
  REQUIRE(verity.exitCode == 0);
  const auto at = verity.out.find("Root hash:");
  REQUIRE(at != std::string::npos);
  const std::string rootHash = verity.out.substr(verity.out.find_first_not_of(" \t", at + 10), 64);
  const auto packed = keel::testing::run(
      {KEEL_IMAGE_PACK_PATH, "pack", "--kernel", (image / "vmlinuz").string(), "--initramfs",
       (initramfs.empty() ? image / "initrd.img" : initramfs).string(), "--root", (dir / "root.squashfs").string(), "--verity",
       (dir / "root.verity").string(), "--version", version, "--build-id", "test-" + version, "--root-hash", rootHash,
       "--salt", salt, "-o", out.string()});
  INFO(packed.err);
  REQUIRE(packed.exitCode == 0);
}

// Signs `image` with `key` into `image`.sig, as an image's owner does.
void signImage(const std::filesystem::path& image, const std::filesystem::path& key,
               const std::filesystem::path& signature = {}) {
  std::vector<std::string> argv = {KEELCTL_PATH, "sign-image", "--key", key.string(), image.string()};
  if (!signature.empty()) argv.insert(argv.end(), {"-o", signature.string()});
  const auto signedImage = keel::testing::run(argv);
  INFO(signedImage.err);
  REQUIRE(signedImage.exitCode == 0);
}

// A root slot as an upgrade leaves it on the state disk, in `state`/lib/keel-boot: a second
// build's root changed by `change`, its verity tree, the build's kernel and initramfs (or
// `initramfs`), and its manifest signed with `keyDir`'s image-signing.key.
void addSlot(const keel::testing::TempDir& dir, const std::filesystem::path& state, const std::string& slot,
             const std::string& change, const std::filesystem::path& keyDir,
             const std::filesystem::path& initramfs = {}) {
  const auto boot = state / "lib/keel-boot";
  std::filesystem::create_directories(boot);
  const auto image = dir / ("slot-" + slot + ".img");
  packImage(dir, change, nextVersion(factoryVersion()), image, initramfs);
  const std::string base = "slot-" + slot;
  std::filesystem::copy_file(std::filesystem::path(KEEL_IMAGE_DIR) / "vmlinuz", boot / (base + ".vmlinuz"));
  std::filesystem::copy_file(initramfs.empty() ? std::filesystem::path(KEEL_IMAGE_DIR) / "initrd.img" : initramfs,
                             boot / (base + ".initrd"));
  std::filesystem::rename(dir / "root.squashfs", boot / (base + ".squashfs"));
  std::filesystem::rename(dir / "root.verity", boot / (base + ".verity"));
  const auto manifest = keel::testing::run({KEEL_IMAGE_PACK_PATH, "show", image.string()});
  REQUIRE(manifest.exitCode == 0);
  writeFile(boot / (base + ".manifest.json"), manifest.out);
  signImage(image, keyDir / "image-signing.key", boot / (base + ".manifest.sig"));
}

// A state disk with a second build in slot b and a boot pointer that tries it once.
std::filesystem::path stateWithSlotB(const keel::testing::TempDir& dir, const std::string& change,
                                     const std::filesystem::path& keyDir,
                                     const std::filesystem::path& initramfs = {}) {
  const auto state = dir / "state";
  addSlot(dir, state, "b", change, keyDir, initramfs);
  writeFile(state / "lib/keel-boot/pointer", "boot=b\nfallback=factory\ntries=1\n");
  return state;
}

TEST_CASE("a fault in PID 1 is written to the console before the kernel panics", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
#ifndef KEEL_IMAGE_HAS_TEST_HOOKS
  SKIP("machined was built without KEEL_TEST_HOOKS: nothing makes PID 1 fault");
#endif
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/true, "KEEL_TEST_PID1_FAULT=1");
  CHECK(vm.waitForSerial("keel-pid1: PID 1 crashed with signal 11; the kernel panics next", kBootTimeout));
  CHECK(vm.waitForSerial("Kernel panic - not syncing: Attempted to kill init!", 60s));
  CHECK(vm.waitForExit(60s));
}

TEST_CASE("a new root slot that serves the API is kept", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  // A second build: the same daemons, with a file that tells the slots apart.
  makeImageSigningKey(work.path());
  const auto state = stateWithSlotB(work, "echo b > usr/share/keel/slot-b", work.path());
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=120", state, work.path());
  REQUIRE(vm.waitForApi(kBootTimeout));
  CHECK_THAT(vm.serial(), ContainsSubstring("keel-init: trying slot b (0 more tries after this boot)"));
  // The slot carries the build's own kernel and initramfs: its root is mounted at once.
  CHECK_THAT(vm.serial(), ContainsSubstring("keel-init: slot b boots with this kernel and initramfs: no kexec"));
  CHECK(vm.waitForSerial("keel-pid1: slot b serves the API; it is kept", 30s));

  // Kept: the next boot takes slot b again, no longer on trial.
  const size_t before = vm.serial().size();
  CHECK(vm.keelctl({"reboot", "--yes"}).exitCode == 0);
  REQUIRE(vm.waitForSerial("keel-pid1: rebooting", 60s, before));
  REQUIRE(vm.waitForApi(kBootTimeout, before));
  const std::string second = vm.serial().substr(before);
  CHECK_THAT(second,
             ContainsSubstring("keel-init: root: slot b, verified by dm-verity and mounted read-only"));
  CHECK_THAT(second, !ContainsSubstring("trying slot"));
  CHECK_THAT(second, !ContainsSubstring("on trial"));

  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
}

// The slot's own initramfs has no working /init: the slot's kernel panics, the machine
// restarts with its boot loader's kernel, and the slot's try is spent.
TEST_CASE("a new root slot whose initramfs does not come up is left for the previous one", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  makeImageSigningKey(work.path());
  const auto broken = initramfsWith(work, "initrd-broken.img", {{"init", "", 0755}});
  const auto state = stateWithSlotB(work, "true", work.path(), broken);
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=120", state, work.path());
  CHECK(vm.waitForSerial("keel-init: starting slot b's own kernel and initramfs", kBootTimeout));
  CHECK(vm.waitForSerial("Kernel panic", kBootTimeout));
  CHECK(vm.waitForSerial("keel-init: slot b never reached API-ready; going back to slot factory", kBootTimeout));
  REQUIRE(vm.waitForApi(kBootTimeout, vm.serial().find("going back to slot factory")));
  const auto version = vm.keelctl({"version", "-o", "json"});
  REQUIRE(version.exitCode == 0);
  CHECK(nlohmann::json::parse(version.out)["messages"][0]["boot_slot"] == "factory");
  CHECK_THAT(vm.keelctl({"events"}).out, ContainsSubstring("slot b never reached API-ready; went back to slot factory"));
  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
  const auto pointer = keel::testing::run({"/usr/sbin/debugfs", "-R", "cat /lib/keel-boot/pointer", vm.statePath().string()});
  CHECK(pointer.out == "boot=factory\nfallback=factory\ntries=confirmed\n");
}

TEST_CASE("a new root slot whose machined keeps crashing reboots into the previous one", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
#ifndef KEEL_IMAGE_HAS_TEST_HOOKS
  SKIP("machined was built without KEEL_TEST_HOOKS: nothing makes it crash");
#endif
  keel::testing::TempDir work;
  makeImageSigningKey(work.path());
  const auto state = stateWithSlotB(work, "true", work.path());
  // QEMU exits at the reboot: what matters is that PID 1 reboots instead of panicking,
  // and that the slot's one try is spent, so the next boot takes the previous slot.
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/true, "KEEL_TEST_FORBIDDEN_SYSCALL=socket-inet KEEL_CONFIRM_TIMEOUT=120",
             state, work.path());
  CHECK(vm.waitForSerial("keel-pid1: machined failed 5 times within a minute on slot b; rebooting into the previous slot",
                         kBootTimeout));
  CHECK(vm.waitForExit(60s));
  CHECK_THAT(vm.serial(), !ContainsSubstring("Kernel panic"));
  const auto pointer = keel::testing::run({"/usr/sbin/debugfs", "-R", "cat /lib/keel-boot/pointer", vm.statePath().string()});
  CHECK(pointer.out == "boot=b\nfallback=factory\ntries=0\n");
}

// One boot for both reasons a slot is refused: slot b (booted on trial, falling back to a)
// has a byte of its root changed on the state disk after it was written; slot a's manifest
// was changed after it was signed (another root hash). Each is given up in turn, and the
// node serves the API from the factory root, saying why on the console and in its events.
TEST_CASE("a slot whose root changed on the state disk or whose manifest signature fails is given up",
          "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  makeImageSigningKey(work.path());
  const auto state = work / "state";
  const auto boot = state / "lib/keel-boot";
  // One build signed by the owner in both slots (a copy: only one root to pack).
  addSlot(work, state, "b", "echo second > usr/share/keel/build-id", work.path());
  for (const char* ext : {".squashfs", ".verity", ".vmlinuz", ".initrd", ".manifest.json", ".manifest.sig"}) {
    std::filesystem::copy_file(boot / (std::string("slot-b") + ext), boot / (std::string("slot-a") + ext));
  }
  // One byte of slot b's root, flipped in the middle of the file.
  {
    std::fstream root(boot / "slot-b.squashfs", std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(root);
    root.seekg(static_cast<std::streamoff>(std::filesystem::file_size(boot / "slot-b.squashfs") / 2));
    char byte = 0;
    root.get(byte);
    root.seekp(-1, std::ios::cur);
    root.put(static_cast<char>(byte ^ 0x01));
  }
  // Slot a's manifest, pointed at another root after it was signed.
  std::string manifest = readFile(boot / "slot-a.manifest.json");
  const auto at = manifest.find("\"root_hash\": \"");
  REQUIRE(at != std::string::npos);
  manifest.replace(at + 14, 64, std::string(64, '0'));
  writeFile(boot / "slot-a.manifest.json", manifest);
  writeFile(boot / "pointer", "boot=b\nfallback=a\ntries=1\n");

  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=120", state, work.path());
  REQUIRE(vm.waitForApi(kBootTimeout));
  const std::string console = vm.serial();
  CHECK_THAT(console, ContainsSubstring("keel-init: trying slot b"));
  CHECK_THAT(console, ContainsSubstring("keel-init: slot b cannot be mounted: dm-verity verification failed "
                                        "reading the root at byte"));
  CHECK_THAT(console, ContainsSubstring("Input/output error; going back to slot a"));
  CHECK_THAT(console, ContainsSubstring("keel-init: slot a cannot be started: its manifest's signature does not "
                                        "verify with the machine config's image signing key; going back to slot "
                                        "factory"));
  CHECK_THAT(console, ContainsSubstring("(slot factory), verified by dm-verity and mounted read-only"));
  // machined records both reasons as the automatic rollback.
  const auto events = vm.keelctl({"events"});
  INFO(events.out << events.err);
  CHECK_THAT(events.out, ContainsSubstring("slot b could not be mounted: dm-verity verification failed"));
  CHECK_THAT(events.out,
             ContainsSubstring("slot a could not be started: its manifest's signature does not verify"));
  const auto version = vm.keelctl({"version", "-o", "json"});
  REQUIRE(version.exitCode == 0);
  CHECK(nlohmann::json::parse(version.out)["messages"][0]["boot_slot"] == "factory");
  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
  // Both slots are given up for good: the next boot takes the factory root directly.
  const auto pointer = keel::testing::run({"/usr/sbin/debugfs", "-R", "cat /lib/keel-boot/pointer", vm.statePath().string()});
  CHECK(pointer.out == "boot=factory\nfallback=factory\ntries=confirmed\n");
}

TEST_CASE("keelctl upgrade installs a signed build that is kept and rollback returns; other keys change nothing",
          "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  const auto image = work / "second.img";
  const std::string factory = factoryVersion();
  const std::string newer = nextVersion(factory);
  // The second build's initramfs names itself otherwise: the node must boot it.
  packImage(work, "echo second > usr/share/keel/build-id", newer, image,
            initramfsWith(work, "initrd-second.img", {{"etc/initramfs-version", newer + " second-initramfs\n"}}));
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=120");
  REQUIRE(vm.waitForApi(kBootTimeout));
  const auto versionOf = [&] {
    const auto shown = vm.keelctl({"version", "-o", "json"});
    INFO(shown.out << shown.err);
    REQUIRE(shown.exitCode == 0);
    return nlohmann::json::parse(shown.out)["messages"][0];
  };
  const auto factoryBoot = versionOf();
  CHECK(factoryBoot["initramfs"] == factory + " " + factoryBuildId());
  // The kernel the build fetched, named by its release and build.
  const std::string kernel = factoryBoot["kernel"].get<std::string>();
  std::string release = readFile(std::filesystem::path(KEEL_IMAGE_DIR) / "kernel-version");
  release.erase(release.find_last_not_of('\n') + 1);
  CHECK(kernel.rfind(release + " #", 0) == 0);

  // Signed by someone else's key, or not at all: refused before a byte is written.
  REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "image-key", "-o", (work / "other").string()}).exitCode == 0);
  signImage(image, work / "other/image-signing.key", work / "other.sig");
  size_t before = vm.serial().size();
  const auto forged = vm.keelctl({"upgrade", image.string(), "--signature", (work / "other.sig").string(), "--yes"});
  INFO(forged.out << forged.err);
  CHECK(forged.exitCode != 0);
  CHECK_THAT(forged.err, ContainsSubstring("does not verify with the machine config's signing key"));
  writeFile(work / "empty.sig", "");
  const auto unsignedImage =
      vm.keelctl({"upgrade", image.string(), "--signature", (work / "empty.sig").string(), "--yes"});
  CHECK(unsignedImage.exitCode != 0);
  CHECK_THAT(unsignedImage.err, ContainsSubstring("does not verify"));
  const auto events = vm.keelctl({"events"});
  CHECK_THAT(events.out, ContainsSubstring("refused"));
  CHECK(vm.keelctl({"version"}).exitCode == 0);
  CHECK_THAT(vm.serial().substr(before), !ContainsSubstring("rebooting"));
  const auto nothing = vm.keelctl({"rollback", "--yes"});
  CHECK(nothing.exitCode != 0);
  CHECK_THAT(nothing.err, ContainsSubstring("nothing to roll back to"));

  // Signed by the owner: streamed with progress, written to slot a, booted on trial, kept.
  signImage(image, vm.imageSigningKey());
  before = vm.serial().size();
  const auto started = std::chrono::steady_clock::now();
  const auto upgrade = vm.keelctl({"upgrade", image.string(), "--yes"});
  INFO(upgrade.out << upgrade.err);
  REQUIRE(upgrade.exitCode == 0);
  std::printf("image: upgrade of %.1f MiB streamed in %.1f s\n",
              static_cast<double>(std::filesystem::file_size(image)) / (1 << 20),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  CHECK_THAT(upgrade.err, ContainsSubstring("(100%)"));
  CHECK_THAT(upgrade.out, ContainsSubstring("into slot a; rebooting into it"));
  REQUIRE(vm.waitForSerial("keel-pid1: rebooting", 60s, before));
  REQUIRE(vm.waitForApi(kBootTimeout, before));
  std::printf("image: upgrade to API-ready on the new slot %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  CHECK(vm.waitForSerial("keel-pid1: slot a serves the API; it is kept", 60s, before));
  CHECK_THAT(vm.serial().substr(before), ContainsSubstring("keel-init: trying slot a"));
  // The API names the image the node runs now, and the slot it came from.
  const auto running = vm.keelctl({"version", "-o", "json"});
  INFO(running.out << running.err);
  REQUIRE(running.exitCode == 0);
  const auto runningJson = nlohmann::json::parse(running.out);
  CHECK(runningJson["messages"][0]["image_version"] == newer);
  CHECK(runningJson["messages"][0]["boot_slot"] == "a");
  // Slot a's own initramfs runs now (and its kernel, the same build here).
  CHECK_THAT(vm.serial().substr(before), ContainsSubstring("keel-init: starting slot a's own kernel and initramfs"));
  CHECK(runningJson["messages"][0]["initramfs"] == newer + " second-initramfs");
  CHECK(runningJson["messages"][0]["kernel"] == kernel);

  // The factory's version is older than that now: refused by name, nothing reboots.
  const auto older = work / "older.img";
  REQUIRE(keel::testing::run({KEEL_IMAGE_PACK_PATH, "repack", image.string(), "--version", factory, "-o",
                              older.string()})
              .exitCode == 0);
  signImage(older, vm.imageSigningKey());
  before = vm.serial().size();
  const auto downgrade = vm.keelctl({"upgrade", older.string(), "--yes"});
  INFO(downgrade.out << downgrade.err);
  CHECK(downgrade.exitCode != 0);
  CHECK_THAT(downgrade.err, ContainsSubstring("image version " + factory + " is older than the running version " +
                                              newer) &&
                                ContainsSubstring("--allow-downgrade"));
  CHECK_THAT(vm.keelctl({"events"}).out, ContainsSubstring("downgrade-refused"));
  CHECK_THAT(vm.serial().substr(before), !ContainsSubstring("rebooting"));

  // Rollback on demand: back to the factory root, which stays, with slot a to return to.
  before = vm.serial().size();
  const auto rollback = vm.keelctl({"rollback", "--yes"});
  INFO(rollback.out << rollback.err);
  REQUIRE(rollback.exitCode == 0);
  CHECK_THAT(rollback.out, ContainsSubstring("rolling back from slot a to slot factory"));
  REQUIRE(vm.waitForSerial("keel-pid1: rebooting", 60s, before));
  REQUIRE(vm.waitForApi(kBootTimeout, before));
  CHECK_THAT(vm.serial().substr(before),
             ContainsSubstring("(slot factory), verified by dm-verity and mounted read-only"));
  CHECK_THAT(vm.serial().substr(before), !ContainsSubstring("trying slot"));
  CHECK(versionOf()["initramfs"] == factory + " " + factoryBuildId());

  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
  const auto pointer = keel::testing::run({"/usr/sbin/debugfs", "-R", "cat /lib/keel-boot/pointer", vm.statePath().string()});
  CHECK(pointer.out == "boot=factory\nfallback=a\ntries=confirmed\n");
}

TEST_CASE("an upgrade to a build that never serves the API goes back to the previous slot by itself", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  const auto image = work / "broken.img";
  // A broken build: its apid is an empty file, so the API never comes up.
  packImage(work, ": > usr/libexec/keel/apid", nextVersion(factoryVersion()), image);
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=20");
  REQUIRE(vm.waitForApi(kBootTimeout));
  signImage(image, vm.imageSigningKey());
  const size_t before = vm.serial().size();
  const auto upgrade = vm.keelctl({"upgrade", image.string(), "--yes"});
  INFO(upgrade.out << upgrade.err);
  REQUIRE(upgrade.exitCode == 0);
  CHECK(vm.waitForSerial("keel-init: trying slot a", kBootTimeout, before));
  CHECK(vm.waitForSerial("keel-pid1: slot a did not serve the API within 20 s; rebooting into the previous slot",
                         kBootTimeout, before));
  CHECK(vm.waitForSerial("keel-init: slot a never reached API-ready; going back to slot factory", kBootTimeout,
                         before));
  REQUIRE(vm.waitForApi(kBootTimeout, vm.serial().find("going back to slot factory", before)));
  CHECK(vm.keelctl({"version"}).exitCode == 0);
  // The fallback is an event, as a rollback on demand is.
  CHECK_THAT(vm.keelctl({"events"}).out,
             ContainsSubstring("slot a never reached API-ready; went back to slot factory"));
  // Back where it was: nothing left to roll back to.
  const auto rollback = vm.keelctl({"rollback", "--yes"});
  CHECK(rollback.exitCode != 0);
  CHECK_THAT(rollback.err, ContainsSubstring("nothing to roll back to"));
  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
}

// Power cuts during an upgrade, at points the test chooses: while the image streams, while
// machined puts the slot in place and points the next boot at it, while the node reboots,
// while the initramfs counts the slot's try down and starts its kernel, and around the
// confirmation. After every cut the node boots a complete, verified slot and serves the
// API; the next upgrade starts from wherever it came up.
TEST_CASE("an upgrade cut by a power failure at any of 20 points leaves a node that boots a verified slot",
          "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  keel::testing::TempDir work;
  const auto image = work / "next.img";
  const std::string factory = factoryVersion();
  const std::string newer = nextVersion(factory);
  // An initramfs of its own: every boot of the new slot goes through the kexec.
  packImage(work, "echo next > usr/share/keel/build-id", newer, image,
            initramfsWith(work, "initrd-next.img", {{"etc/initramfs-version", newer + " next-initramfs\n"}}));
  ImageVm vm(KEEL_IMAGE_DIR, /*exitOnReboot=*/false, "KEEL_CONFIRM_TIMEOUT=120");
  REQUIRE(vm.waitForApi(kBootTimeout));
  signImage(image, vm.imageSigningKey());

  // Where to cut: after a line of keelctl's output (its progress, then its answer) or of
  // the console appears, and a delay after it.
  struct Cut {
    bool console;
    std::string after;
    std::chrono::milliseconds delay;
  };
  std::vector<Cut> cuts;
  for (const char* sent : {"(10%)", "(50%)", "(90%)"}) cuts.push_back({false, sent, 0ms});
  // The last bytes are in: the parts are checked, synced, renamed into place, then the pointer.
  for (const int ms : {0, 100, 200, 300, 450, 600, 800, 1000, 1300}) {
    cuts.push_back({false, "(100%)", std::chrono::milliseconds(ms)});
  }
  cuts.push_back({false, "rebooting into it", 0ms});
  cuts.push_back({true, "keel-pid1: rebooting", 0ms});
  cuts.push_back({true, "keel-pid1: rebooting", 300ms});
  cuts.push_back({true, "keel-init: trying slot", 0ms});
  cuts.push_back({true, "keel-init: starting slot", 0ms});
  cuts.push_back({true, "keel-init: starting slot", 300ms});
  cuts.push_back({true, "is on trial", 0ms});
  cuts.push_back({true, "serves the API; it is kept", 0ms});
  REQUIRE(cuts.size() == 20);

  std::map<std::string, int> outcomes;
  for (size_t i = 0; i < cuts.size(); ++i) {
    const Cut& cut = cuts[i];
    INFO("power cut " << i + 1 << ": " << (cut.console ? "console" : "keelctl") << " '" << cut.after << "' + "
                      << cut.delay.count() << " ms");
    size_t from = vm.serial().size();
    const auto log = work / ("upgrade-" + std::to_string(i + 1) + ".log");
    keel::testing::ChildProcess upgrade(vm.keelctlArgv({"upgrade", image.string(), "--yes"}), log);
    const bool reached = keel::testing::eventually(
        [&] {
          const std::string text = cut.console ? vm.serial().substr(from) : upgrade.log();
          return text.find(cut.after) != std::string::npos;
        },
        std::chrono::seconds(300));
    INFO(upgrade.log());
    REQUIRE(reached);
    std::this_thread::sleep_for(cut.delay);
    vm.powerCut();
    if (upgrade.running()) upgrade.signal(SIGKILL);
    upgrade.wait(30s);

    from = vm.serial().size();
    vm.powerOn();
    const auto ready = vm.waitForApi(kBootTimeout, from);
    REQUIRE(ready);
    const std::string boot = vm.serial().substr(from);
    // The root it came up on was verified: the factory root or a slot, through dm-verity.
    CHECK_THAT(boot, ContainsSubstring("verified by dm-verity and mounted read-only"));
    const auto shown = vm.keelctl({"version", "-o", "json"});
    REQUIRE(shown.exitCode == 0);
    const auto version = nlohmann::json::parse(shown.out)["messages"][0];
    const std::string slot = version["boot_slot"].get<std::string>();
    CHECK(version["image_version"] == (slot == "factory" ? factory : newer));
    // A slot on trial is kept once it serves the API; the next upgrade waits for that.
    if (boot.find("is on trial") != std::string::npos) {
      CHECK(vm.waitForSerial("serves the API; it is kept", 60s, from));
    }
    std::printf("image: power cut %zu (%s '%s' + %lld ms): the next boot served the API from slot %s in %.1f s\n",
                i + 1, cut.console ? "console" : "keelctl", cut.after.c_str(),
                static_cast<long long>(cut.delay.count()), slot.c_str(), static_cast<double>(ready->count()) / 1000);
    ++outcomes[slot];
  }
  std::printf("image: after 20 power cuts the node came up on");
  for (const auto& [slot, count] : outcomes) std::printf(" slot %s %d time(s);", slot.c_str(), count);
  std::printf("\n");
  // No cut left a half-written slot behind: the partial files of cut streams are gone.
  CHECK(vm.keelctl({"shutdown", "--yes"}).exitCode == 0);
  CHECK(vm.waitForExit(60s));
  const auto listing =
      keel::testing::run({"/usr/sbin/debugfs", "-R", "ls -l /lib/keel-boot", vm.statePath().string()});
  INFO(listing.out);
  CHECK_THAT(listing.out, !ContainsSubstring(".partial"));
}

}  // namespace
