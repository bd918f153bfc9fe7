// keelctl as an operator runs it: a node whose machined starts the real apid, reached
// only over mutual TLS with the keelconfig that `keelctl gen config` wrote.
#include <signal.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"
#include "image_files.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

// A cluster made by keelctl, one control-plane node with apid on a port picked now.
// `bootSlots`: its machined writes root slots to gen/boot (--boot-dir) and its config
// names the image key gen/image-signing.key signs with.
struct Cluster {
  TempDir gen;
  TempDir libexec;
  int port = freePort();
  std::unique_ptr<Node> node;

  explicit Cluster(const std::string& address = "127.0.1.1", bool bootSlots = false) {
    chmod(gen.path().c_str(), 0711);
    REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "secrets", "-o", (gen / "secrets.json").string()}).exitCode == 0);
    std::vector<std::string> genConfig = {KEELCTL_PATH, "gen", "config", "test", address + ":" + std::to_string(port),
                                          "--with-secrets", (gen / "secrets.json").string(), "-o", gen.path().string()};
    std::vector<std::string> machinedArgs = {"--libexec", libexec.path().string(), "--api-port", std::to_string(port)};
    if (bootSlots) {
      REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "image-key", "-o", gen.path().string()}).exitCode == 0);
      genConfig.insert(genConfig.end(), {"--image-key", (gen / "image-signing.pub").string()});
      machinedArgs.insert(machinedArgs.end(), {"--boot-dir", (gen / "boot").string()});
    }
    const auto made = keel::testing::run(genConfig);
    INFO(made.err);
    REQUIRE(made.exitCode == 0);
    installDaemons(libexec);
    auto config = nlohmann::json::parse(readFile(gen / "controlplane.json"));
    node = std::make_unique<Node>(config, machinedArgs, address);
    REQUIRE(eventually([&] { return keelctl({"version"}).exitCode == 0; }, 20s));
  }

  ProcessResult keelctl(std::vector<std::string> args, const std::filesystem::path& keelconfig = {}) const {
    std::vector<std::string> argv = {KEELCTL_PATH, "--keelconfig",
                                     (keelconfig.empty() ? gen / "keelconfig" : keelconfig).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return keel::testing::run(argv, {.workingDirectory = std::nullopt, .extraEnv = {}, .stdinData = "", .timeout = 60s});
  }
};

TEST_CASE("keelctl reaches a node through apid with the generated keelconfig", "[keelctl-apid]") {
  Cluster c;
  const auto version = c.keelctl({"version"});
  INFO(version.err);
  REQUIRE(version.exitCode == 0);
  CHECK_THAT(version.out, ContainsSubstring("127.0.1.1"));
  const auto services = c.keelctl({"services"});
  REQUIRE(services.exitCode == 0);
  CHECK_THAT(services.out, ContainsSubstring("apid"));
  // apid's audit lines are its service log.
  ProcessResult logs;
  CHECK(eventually(
      [&] {
        logs = c.keelctl({"logs", "apid", "--tail", "50"});
        return logs.exitCode == 0 &&
               logs.out.find("\"method\":\"/keel.machine.v1.MachineService/Version\"") != std::string::npos;
      },
      10s));
  CHECK_THAT(logs.out, ContainsSubstring("\"identity\":\"admin\""));
}

TEST_CASE("keelctl -n shows each node's failure and exits non-zero", "[keelctl-apid]") {
  Cluster c;
  const auto r = c.keelctl({"-n", "127.0.1.1,127.0.1.9", "version"});
  INFO(r.out << r.err);
  CHECK(r.exitCode != 0);
  CHECK_THAT(r.out, ContainsSubstring("127.0.1.1"));
  CHECK_THAT(r.err, ContainsSubstring("127.0.1.9"));
  CHECK_THAT(r.err, ContainsSubstring("1 of 2 nodes failed"));
}

TEST_CASE("keelctl names the missing role when apid denies a call", "[keelctl-apid]") {
  Cluster c;
  const auto reader = c.gen / "reader.keelconfig";
  const auto made = keel::testing::run({KEELCTL_PATH, "config", "new", reader.string(), "--roles", "os:reader",
                                        "--endpoints", "127.0.1.1:" + std::to_string(c.port), "--from",
                                        (c.gen / "secrets.json").string()});
  INFO(made.err);
  REQUIRE(made.exitCode == 0);
  CHECK(c.keelctl({"version"}, reader).exitCode == 0);
  const auto denied = c.keelctl({"reboot", "--yes"}, reader);
  CHECK(denied.exitCode != 0);
  CHECK_THAT(denied.err, ContainsSubstring("os:operator") || ContainsSubstring("os:admin"));
  CHECK(c.node->process().running());
}

TEST_CASE("upgrade and rollback are admin only, and a node not booted from slots refuses them", "[keelctl-apid]") {
  Cluster c;
  const auto& gen = c.gen;
  REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "image-key", "-o", gen.path().string()}).exitCode == 0);
  const auto image = makeImageFile(gen.path(), "1.0.0");
  REQUIRE(keel::testing::run({KEELCTL_PATH, "sign-image", "--key", (gen / "image-signing.key").string(),
                              image.string()})
              .exitCode == 0);
  const auto operatorConfig = gen / "operator.keelconfig";
  REQUIRE(keel::testing::run({KEELCTL_PATH, "config", "new", operatorConfig.string(), "--roles", "os:operator",
                              "--endpoints", "127.0.1.1:" + std::to_string(c.port), "--from",
                              (gen / "secrets.json").string()})
              .exitCode == 0);
  // An operator may reboot, but not replace the root or roll it back.
  const auto denied = c.keelctl({"upgrade", image.string(), "--yes"}, operatorConfig);
  CHECK(denied.exitCode != 0);
  CHECK_THAT(denied.err, ContainsSubstring("PERMISSION_DENIED") || ContainsSubstring("os:admin"));
  const auto deniedRollback = c.keelctl({"rollback", "--yes"}, operatorConfig);
  CHECK(deniedRollback.exitCode != 0);
  CHECK_THAT(deniedRollback.err, ContainsSubstring("os:admin"));

  // machined here runs as a process on a host: nothing to upgrade, and it says so.
  const auto upgrade = c.keelctl({"upgrade", image.string(), "--yes"});
  CHECK(upgrade.exitCode != 0);
  CHECK_THAT(upgrade.err, ContainsSubstring("does not boot from root slots"));
  const auto rollback = c.keelctl({"rollback", "--yes"});
  CHECK(rollback.exitCode != 0);
  CHECK_THAT(rollback.err, ContainsSubstring("does not boot from root slots"));

  // An image without a signature never leaves keelctl; the error says how to sign it.
  const auto unsignedFile = makeImageFile(gen.path(), "2.0.0");
  const auto unsignedImage = c.keelctl({"upgrade", unsignedFile.string(), "--yes"});
  CHECK(unsignedImage.exitCode != 0);
  CHECK_THAT(unsignedImage.err, ContainsSubstring("keelctl sign-image --key"));
  // Nor does a file that is not an image.
  keel::testing::writeFile(gen / "root.squashfs", std::string(8192, 'x'));
  const auto notImage = c.keelctl({"upgrade", (gen / "root.squashfs").string(), "--yes"});
  CHECK(notImage.exitCode != 0);
  CHECK_THAT(notImage.err, ContainsSubstring("not a Keel image file"));
  // Several nodes at once are refused before anything is sent.
  const auto many = c.keelctl({"-n", "127.0.1.1,127.0.1.2", "upgrade", image.string(), "--yes"});
  CHECK(many.exitCode != 0);
  CHECK_THAT(many.err, ContainsSubstring("one node"));
  CHECK(c.node->process().running());
  CHECK(c.keelctl({"version"}).exitCode == 0);
}

// Signs `image` with the cluster's image key, as its owner does.
void signImage(const Cluster& c, const std::filesystem::path& image) {
  const auto signedImage =
      keel::testing::run({KEELCTL_PATH, "sign-image", "--key", (c.gen / "image-signing.key").string(), image.string()});
  INFO(signedImage.err);
  REQUIRE(signedImage.exitCode == 0);
}

// What build-image.sh writes into the factory root, under the node's --root. machined
// reads it once, when it starts (a node's image changes only with a reboot), so the node
// is restarted on it.
void setFactoryVersion(Cluster& c, const std::string& text) {
  std::filesystem::create_directories(c.node->root() / "usr/share/keel");
  writeFile(c.node->root() / "usr/share/keel/image-version", text);
  c.node->process().signal(SIGTERM);
  REQUIRE(c.node->process().wait(15s));
  c.node->restart();
  REQUIRE(eventually([&] { return c.keelctl({"version"}).exitCode == 0; }, 30s));
}

std::string slotVersion(const Cluster& c) {
  return nlohmann::json::parse(readFile(c.gen / "boot/slot-a.manifest.json"))["version"].get<std::string>();
}

TEST_CASE("an older image is refused, named as a downgrade, unless --allow-downgrade; newer ones install",
          "[keelctl-apid]") {
  Cluster c("127.0.1.1", /*bootSlots=*/true);
  const auto boot = c.gen / "boot";
  setFactoryVersion(c, "0.5.0 factory-build\n");
  const auto version = c.keelctl({"version"});
  INFO(version.out << version.err);
  CHECK_THAT(version.out, ContainsSubstring("0.5.0") && ContainsSubstring("factory"));

  const auto older = makeImageFile(c.gen.path(), "0.4.0");
  const auto newer = makeImageFile(c.gen.path(), "0.6.0", 'n');
  signImage(c, older);
  signImage(c, newer);

  // Older than the running image: refused by name before any part is written.
  const auto refused = c.keelctl({"upgrade", older.string(), "--no-reboot", "--yes"});
  INFO(refused.out << refused.err);
  CHECK(refused.exitCode != 0);
  CHECK_THAT(refused.err, ContainsSubstring("image version 0.4.0 is older than the running version 0.5.0") &&
                              ContainsSubstring("--allow-downgrade"));
  CHECK((!std::filesystem::exists(boot) || std::filesystem::is_empty(boot)));
  CHECK_THAT(c.keelctl({"events"}).out, ContainsSubstring("downgrade-refused"));
  ProcessResult audit;
  CHECK(eventually(
      [&] {
        audit = c.keelctl({"logs", "apid", "--tail", "100"});
        return audit.out.find("FAILED_PRECONDITION") != std::string::npos;
      },
      10s));
  CHECK_THAT(audit.out, ContainsSubstring("/keel.machine.v1.MachineService/Upgrade"));

  // The admin asks for it by name: installed, and the event says it was a downgrade.
  const auto downgraded = c.keelctl({"upgrade", older.string(), "--allow-downgrade", "--no-reboot", "--yes"});
  INFO(downgraded.out << downgraded.err);
  REQUIRE(downgraded.exitCode == 0);
  CHECK_THAT(downgraded.out, ContainsSubstring("installed image 0.4.0") && ContainsSubstring("replacing 0.5.0"));
  CHECK(slotVersion(c) == "0.4.0");
  CHECK(readFile(boot / "pointer") == "boot=a\nfallback=factory\ntries=1\n");
  CHECK_THAT(c.keelctl({"events"}).out, ContainsSubstring("downgraded"));

  // A newer image needs no flag; the slot then holds all of it.
  const auto upgraded = c.keelctl({"upgrade", newer.string(), "--no-reboot", "--yes"});
  INFO(upgraded.out << upgraded.err);
  REQUIRE(upgraded.exitCode == 0);
  CHECK(slotVersion(c) == "0.6.0");
  CHECK(readFile(boot / "slot-a.squashfs") == std::string(8192, 'n'));
  CHECK(readFile(boot / "slot-a.vmlinuz") == std::string(3000, 'k'));
  CHECK(readFile(boot / "slot-a.initrd") == std::string(2000, 'i'));
  CHECK(readFile(boot / "slot-a.verity") == std::string(4096, 'v'));
  CHECK(readFile(boot / "slot-a.manifest.sig") == readFile(c.gen / "keel-0.6.0.img.sig"));
  CHECK_THAT(c.keelctl({"events"}).out, ContainsSubstring("installed image 0.6.0"));
}

TEST_CASE("an image whose part was changed after signing leaves the slot as it was", "[keelctl-apid]") {
  Cluster c("127.0.1.1", /*bootSlots=*/true);
  const auto boot = c.gen / "boot";
  setFactoryVersion(c, "0.5.0 factory-build\n");
  const auto good = makeImageFile(c.gen.path(), "0.6.0");
  signImage(c, good);
  REQUIRE(c.keelctl({"upgrade", good.string(), "--no-reboot", "--yes"}).exitCode == 0);

  const auto tampered = makeImageFile(c.gen.path(), "0.7.0");
  signImage(c, tampered);
  std::string bytes = readFile(tampered);
  bytes[bytes.size() - 4096 - 10] ^= 1;  // inside the root part
  writeFile(tampered, bytes);
  const auto refused = c.keelctl({"upgrade", tampered.string(), "--no-reboot", "--yes"});
  INFO(refused.out << refused.err);
  CHECK(refused.exitCode != 0);
  CHECK_THAT(refused.err, ContainsSubstring("the image's root does not hash to its manifest's SHA-256"));
  CHECK(slotVersion(c) == "0.6.0");
  CHECK(readFile(boot / "slot-a.squashfs") == std::string(8192, 'r'));
  for (const auto& entry : std::filesystem::directory_iterator(boot)) {
    CHECK(entry.path().extension() != ".partial");
  }
  const auto events = c.keelctl({"events"});
  CHECK_THAT(events.out, ContainsSubstring("refused"));
  CHECK_THAT(events.out, !ContainsSubstring("downgrade-refused"));

  // The same version again is a reinstall, accepted.
  const auto same = makeImageFile(c.gen.path(), "0.5.0");
  signImage(c, same);
  CHECK(c.keelctl({"upgrade", same.string(), "--no-reboot", "--yes"}).exitCode == 0);
}

TEST_CASE("keelctl explains a server certificate from another cluster's CA", "[keelctl-apid]") {
  Cluster c;
  TempDir other;
  REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "config", "other", "127.0.1.1:" + std::to_string(c.port), "-o",
                              other.path().string()})
              .exitCode == 0);
  const auto r = c.keelctl({"version"}, other / "keelconfig");
  INFO(r.err);
  CHECK(r.exitCode != 0);
  CHECK_THAT(r.err, ContainsSubstring("sha256"));
  CHECK(c.node->process().running());
}

}  // namespace
