// keelctl as an operator runs it: a node whose machined starts the real apid, reached
// only over mutual TLS with the keelconfig that `keelctl gen config` wrote.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

// A cluster made by keelctl, one control-plane node with apid on a port picked now.
struct Cluster {
  TempDir gen;
  TempDir libexec;
  int port = freePort();
  std::unique_ptr<Node> node;

  explicit Cluster(const std::string& address = "127.0.1.1") {
    chmod(gen.path().c_str(), 0711);
    REQUIRE(keel::testing::run({KEELCTL_PATH, "gen", "secrets", "-o", (gen / "secrets.json").string()}).exitCode == 0);
    const auto made = keel::testing::run({KEELCTL_PATH, "gen", "config", "test", address + ":" + std::to_string(port),
                                          "--with-secrets", (gen / "secrets.json").string(), "-o", gen.path().string()});
    INFO(made.err);
    REQUIRE(made.exitCode == 0);
    installDaemons(libexec);
    auto config = nlohmann::json::parse(readFile(gen / "controlplane.json"));
    node = std::make_unique<Node>(config,
                                  std::vector<std::string>{"--libexec", libexec.path().string(), "--api-port",
                                                           std::to_string(port)},
                                  address);
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
  keel::testing::writeFile(gen / "root.squashfs", std::string(3 << 20, 'k'));
  REQUIRE(keel::testing::run({KEELCTL_PATH, "sign-image", "--key", (gen / "image-signing.key").string(),
                              (gen / "root.squashfs").string()})
              .exitCode == 0);
  const auto operatorConfig = gen / "operator.keelconfig";
  REQUIRE(keel::testing::run({KEELCTL_PATH, "config", "new", operatorConfig.string(), "--roles", "os:operator",
                              "--endpoints", "127.0.1.1:" + std::to_string(c.port), "--from",
                              (gen / "secrets.json").string()})
              .exitCode == 0);
  // An operator may reboot, but not replace the root or roll it back.
  const auto denied = c.keelctl({"upgrade", (gen / "root.squashfs").string(), "--yes"}, operatorConfig);
  CHECK(denied.exitCode != 0);
  CHECK_THAT(denied.err, ContainsSubstring("PERMISSION_DENIED") || ContainsSubstring("os:admin"));
  const auto deniedRollback = c.keelctl({"rollback", "--yes"}, operatorConfig);
  CHECK(deniedRollback.exitCode != 0);
  CHECK_THAT(deniedRollback.err, ContainsSubstring("os:admin"));

  // machined here runs as a process on a host: nothing to upgrade, and it says so.
  const auto upgrade = c.keelctl({"upgrade", (gen / "root.squashfs").string(), "--yes"});
  CHECK(upgrade.exitCode != 0);
  CHECK_THAT(upgrade.err, ContainsSubstring("does not boot from root slots"));
  const auto rollback = c.keelctl({"rollback", "--yes"});
  CHECK(rollback.exitCode != 0);
  CHECK_THAT(rollback.err, ContainsSubstring("does not boot from root slots"));

  // An image without a signature never leaves keelctl; the error says how to sign it.
  keel::testing::writeFile(gen / "unsigned.squashfs", "x");
  const auto unsignedImage = c.keelctl({"upgrade", (gen / "unsigned.squashfs").string(), "--yes"});
  CHECK(unsignedImage.exitCode != 0);
  CHECK_THAT(unsignedImage.err, ContainsSubstring("keelctl sign-image --key"));
  // Several nodes at once are refused before anything is sent.
  const auto many = c.keelctl({"-n", "127.0.1.1,127.0.1.2", "upgrade", (gen / "root.squashfs").string(), "--yes"});
  CHECK(many.exitCode != 0);
  CHECK_THAT(many.err, ContainsSubstring("one node"));
  CHECK(c.node->process().running());
  CHECK(c.keelctl({"version"}).exitCode == 0);
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
