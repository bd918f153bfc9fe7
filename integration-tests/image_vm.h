// The OS image booted under QEMU for integration tests: a control-plane config made by
// the real keelctl on a config disk, a fresh state disk, user-mode networking restricted
// to the host's loopback with apid's port forwarded to a port picked at run time. QEMU is
// killed when the VM object goes, whatever the test did.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "keel/testing/testing.h"

namespace keel::integration {

using namespace std::chrono_literals;

using keel::testing::readFile;
using keel::testing::writeFile;

// A TCP port on 127.0.0.1 that was free a moment ago, for QEMU's forward.
inline int freeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Why the image tests cannot run here, or nullopt when they can. Only a missing tool or a
// missing image (itself skipped for a missing tool) skips; anything else fails.
inline std::optional<std::string> imageSkipReason(const std::filesystem::path& imageDir) {
  if (keel::testing::run({"sh", "-c", "command -v qemu-system-x86_64"}).exitCode != 0) {
    return "qemu-system-x86_64 is missing (Debian package qemu-system-x86; scripts/setup.sh installs it)";
  }
  for (const char* f : {"vmlinuz", "initrd.img", "root.squashfs", "root.disk"}) {
    if (!std::filesystem::exists(imageDir / f)) {
      return (imageDir / f).string() + " was not built (the 'image: build' test says why)";
    }
  }
  return std::nullopt;
}

// KVM only where it really works: the device must open and the CPU must offer hardware
// virtualisation (a paravirtual /dev/kvm without VMX/SVM hangs a Debian guest).
inline std::string qemuAccelerator() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return "tcg";
  ::close(fd);
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      return (line.find(" vmx") != std::string::npos || line.find(" svm") != std::string::npos) ? "kvm" : "tcg";
    }
  }
  return "tcg";
}

// Writes an image signing pair (image-signing.key, image-signing.pub) into `dir`.
inline void makeImageSigningKey(const std::filesystem::path& dir) {
  const auto key = keel::testing::run({KEELCTL_PATH, "gen", "image-key", "-o", dir.string()});
  INFO(key.err);
  REQUIRE(key.exitCode == 0);
}

class ImageVm {
 public:
  // Boots a fresh control-plane node. With exitOnReboot QEMU exits when the guest reboots
  // (or panics) instead of booting again. `extraKernelArgs` are appended to the kernel
  // command line. `stateContent`, when given, is a directory whose files the state disk
  // holds from the start (an ext4 made with mke2fs -d); else the disk is blank.
  // `signingKeyDir`, when given, holds the image signing pair (`makeImageSigningKey`) the
  // node's config names, so that slots signed before the boot verify; else one is made.
  explicit ImageVm(const std::filesystem::path& imageDir, bool exitOnReboot = true,
                   const std::string& extraKernelArgs = "", const std::filesystem::path& stateContent = {},
                   const std::filesystem::path& signingKeyDir = {})
      : imageDir_(imageDir), port_(freeLoopbackPort()) {
    chmod(dir_.path().c_str(), 0700);
    // The node accepts upgrades (and boots slots) signed with this directory's image-signing.key.
    if (signingKeyDir.empty()) {
      makeImageSigningKey(dir_.path());
    } else {
      for (const char* f : {"image-signing.key", "image-signing.pub"}) {
        std::filesystem::copy_file(signingKeyDir / f, dir_ / f);
      }
    }
    const auto gen = keel::testing::run({KEELCTL_PATH, "gen", "config", "image-test", "10.0.2.15", "--image-key",
                                         (dir_ / "image-signing.pub").string(), "-o", dir_.path().string()});
    INFO(gen.err);
    REQUIRE(gen.exitCode == 0);
    config_ = nlohmann::json::parse(readFile(dir_ / "controlplane.json"));
    auto& config = config_;
    config["machine"]["network"] = {
        {"hostname", "image-test"},
        {"interfaces", nlohmann::json::array({{{"name", "eth0"}, {"address", "10.0.2.15/24"},
                                               {"gateway", "10.0.2.2"}}})}};
    // The config disk: the JSON, zero-padded to whole sectors.
    std::string disk = config.dump(2);
    disk.resize((disk.size() / 4096 + 1) * 4096, '\0');
    writeFile(dir_ / "config.img", disk);
    // The state disk: empty, formatted by the node on its first boot.
    if (stateContent.empty()) {
      {
        std::ofstream create(dir_ / "state.img");
      }
      std::filesystem::resize_file(dir_ / "state.img", 256ull << 20);
    } else {
      const auto made = keel::testing::run({"/usr/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-d", stateContent.string(),
                                            (dir_ / "state.img").string(), "256M"},
                                           {.workingDirectory = std::nullopt,
                                            .extraEnv = {{"PATH", "/usr/sbin:/sbin:/usr/bin:/bin"}},
                                            .stdinData = "",
                                            .timeout = std::chrono::seconds(60)});
      INFO(made.err);
      REQUIRE(made.exitCode == 0);
    }
    std::vector<std::string> argv = {
        "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-accel", qemuAccelerator(), "-m", "512",
        "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "file:" + serialPath().string(),
        "-kernel", (imageDir_ / "vmlinuz").string(), "-initrd", (imageDir_ / "initrd.img").string(),
        // panic=-1: a panic reboots at once, which -no-reboot turns into QEMU's exit.
        "-append", "console=ttyS0 panic=-1 quiet" + (extraKernelArgs.empty() ? "" : " " + extraKernelArgs),
        "-drive", "if=none,id=root,format=raw,readonly=on,file=" + (imageDir_ / "root.disk").string(),
        "-device", "virtio-blk-pci,drive=root,serial=keel-root",
        "-drive", "if=none,id=state,format=raw,file=" + (dir_ / "state.img").string(),
        "-device", "virtio-blk-pci,drive=state,serial=keel-state",
        "-drive", "if=none,id=config,format=raw,readonly=on,file=" + (dir_ / "config.img").string(),
        "-device", "virtio-blk-pci,drive=config,serial=keel-config",
        // restrict=on: the guest reaches nothing outside; only the forwarded port comes in.
        "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:" + std::to_string(port_) + "-:50000",
        "-device", "virtio-net-pci,netdev=n0"};
    if (exitOnReboot) argv.push_back("-no-reboot");
    argv_ = argv;
    powerOn();
  }

  // Starts QEMU on the VM's disks: at construction, and again after a power cut.
  void powerOn() {
    REQUIRE_FALSE((qemu_ && qemuRunning()));
    // QEMU truncates the serial log when it opens it: what earlier runs wrote is kept, so
    // that offsets into serial() stay valid across power cuts.
    earlierSerial_ = serial();
    std::error_code ec;
    std::filesystem::remove(serialPath(), ec);
    started_ = std::chrono::steady_clock::now();
    qemu_ = std::make_unique<keel::testing::ChildProcess>(argv_, dir_ / "qemu.log");
  }

  // Pulls the plug: QEMU is killed at once, so whatever the guest had not written to its
  // disks is lost, as in a power cut. The host keeps what QEMU wrote.
  void powerCut() {
    qemu_->signal(SIGKILL);
    REQUIRE(qemu_->wait(std::chrono::seconds(30)).has_value());
  }

  // QEMU is killed with the child process; the console goes to the test's output, which
  // ctest shows when the test fails.
  ~ImageVm() {
    std::printf("--- serial console of the VM ---\n%s--- end of the serial console ---\n", serial().c_str());
    std::fflush(stdout);
  }

  ImageVm(const ImageVm&) = delete;
  ImageVm& operator=(const ImageVm&) = delete;

  // The config the node booted with (secrets included, unlike get-config's).
  const nlohmann::json& config() const { return config_; }
  // Writes `config` into the VM's directory (mode 0600) for keelctl apply-config.
  std::filesystem::path writeConfig(const nlohmann::json& config, const std::string& name) const {
    const auto path = dir_ / name;
    writeFile(path, config.dump(2));
    chmod(path.c_str(), 0600);
    return path;
  }

  std::filesystem::path statePath() const { return dir_ / "state.img"; }
  // The private key the node's machine.upgrade.publicKey belongs to.
  std::filesystem::path imageSigningKey() const { return dir_ / "image-signing.key"; }
  std::filesystem::path serialPath() const { return dir_ / "serial.log"; }
  // The console of every run of QEMU so far, this one's last.
  std::string serial() const {
    std::error_code ec;
    return earlierSerial_ + (qemu_ && std::filesystem::exists(serialPath(), ec) ? readFile(serialPath()) : std::string());
  }
  std::string qemuLog() const { return qemu_->log(); }
  int port() const { return port_; }
  keel::testing::ChildProcess& qemu() { return *qemu_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // Waits until the serial console shows `text` at or after byte `from` of its log.
  // Gives up early when QEMU has exited (a panic with -no-reboot ends it).
  bool waitForSerial(const std::string& text, std::chrono::seconds timeout, size_t from = 0) {
    bool found = false;
    keel::testing::eventually(
        [&] {
          const auto s = serial();
          found = s.size() > from && s.find(text, from) != std::string::npos;
          return found || !qemuRunning();
        },
        timeout);
    return found;
  }

  // True once QEMU has exited by itself within `timeout`.
  bool waitForExit(std::chrono::seconds timeout) {
    return keel::testing::eventually([&] { return !qemuRunning(); }, timeout);
  }

  bool qemuRunning() {
    if (qemu_->running()) qemu_->wait(std::chrono::milliseconds(0));
    return qemu_->running();
  }

  // Waits for the boot timeline's "apid listening" (or machined's "service apid running"),
  // then for a real call through QEMU's forward to succeed. Returns the time since QEMU
  // started: power-on to the first answered API call.
  std::optional<std::chrono::milliseconds> waitForApi(std::chrono::seconds timeout, size_t from = 0) {
    // apid says it listens (the boot timeline) before machined's settle time calls it running.
    if (!waitForSerial("s apid listening", timeout, from) && !waitForSerial("service apid running", 1s, from)) {
      return std::nullopt;
    }
    if (!keel::testing::eventually([&] { return keelctl({"version"}).exitCode == 0; }, std::chrono::seconds(30))) {
      return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  }

  // keelctl's arguments to reach this node with the admin's keelconfig.
  std::vector<std::string> keelctlArgv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {KEELCTL_PATH, "--keelconfig", (dir_ / "keelconfig").string(), "-e",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  keel::testing::ProcessResult keelctl(std::vector<std::string> args) const {
    const auto argv = keelctlArgv(args);
    keel::testing::RunOptions options;
    // An upgrade streams a whole root into an emulated guest.
    options.timeout = std::chrono::seconds(180);
    return keel::testing::run(argv, options);
  }

 private:
  keel::testing::TempDir dir_;
  std::filesystem::path imageDir_;
  int port_;
  nlohmann::json config_;
  std::chrono::steady_clock::time_point started_;
  std::vector<std::string> argv_;
  std::string earlierSerial_;
  std::unique_ptr<keel::testing::ChildProcess> qemu_;
};

}  // namespace keel::integration
