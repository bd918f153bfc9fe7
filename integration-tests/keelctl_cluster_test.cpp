// keelctl cluster create/show/destroy and keelctl health, as a user runs them: a real
// local cluster of machined processes on 127.0.1.x, under a temporary directory.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

ProcessResult keelctl(std::vector<std::string> args, const std::filesystem::path& keelconfig = {}) {
  return runKeelctl(std::move(args), keelconfig);
}

}  // namespace

TEST_CASE("cluster create starts a control plane and two workers that all answer; health and destroy",
          "[cluster]") {
  TempDir dir;
  TempDir libexec;
  chmod(dir.path().c_str(), 0711);
  installDaemons(libexec);
  const auto root = dir / "cluster";
  const std::string port = std::to_string(freePort());
  const std::vector<std::string> create = {
      "cluster",    "create",      "--controlplanes", "1",
      "--workers",  "2",           "--root",          root.string(),
      "--machined", MACHINED_PATH, "--libexec",       libexec.path().string(),
      "--api-port", port,          "--join-port",     std::to_string(freePort()),
      "--name",     "it"};
  const auto made = keelctl(create);
  REQUIRE(made.exitCode == 0);
  CHECK_THAT(made.out, ContainsSubstring("cluster 'it' is up: 1 control plane(s), 2 worker(s)"));
  CHECK_THAT(made.err, ContainsSubstring("3/3 nodes ready"));
  const auto kc = root / "keelconfig";

  // Creating again in the same place is refused and changes nothing.
  const auto again = keelctl(create);
  CHECK(again.exitCode != 0);
  CHECK_THAT(again.err, ContainsSubstring("already holds a cluster"));

  const auto show = keelctl({"cluster", "show", "--root", root.string()});
  REQUIRE(show.exitCode == 0);
  for (const char* node : {"127.0.1.1", "127.0.1.2", "127.0.1.3"})
    CHECK_THAT(show.out, ContainsSubstring(node));
  CHECK_THAT(show.out, ContainsSubstring("controlplane"));
  CHECK_THAT(show.out, !ContainsSubstring("not answering"));

  // The context names every node: a plain call reaches all three through the control plane.
  const auto version = keelctl({"version"}, kc);
  REQUIRE(version.exitCode == 0);
  for (const char* node : {"127.0.1.1", "127.0.1.2", "127.0.1.3"})
    CHECK_THAT(version.out, ContainsSubstring(node));

  const auto healthy = keelctl({"health"}, kc);
  CHECK(healthy.exitCode == 0);
  CHECK_THAT(healthy.out, ContainsSubstring("127.0.1.3   yes"));

  // An unreachable node: the exit code says which check failed.
  const auto state = nlohmann::json::parse(readFile(root / "cluster.json"));
  const int workerPid = state["nodes"][2]["pid"];
  REQUIRE(kill(workerPid, SIGKILL) == 0);
  ProcessResult down;
  REQUIRE(eventually(
      [&] {
        down = keelctl({"health"}, kc);
        return down.exitCode == 1;
      },
      20s));
  CHECK_THAT(down.err, ContainsSubstring("127.0.1.3"));

  const auto destroyed = keelctl({"cluster", "destroy", "--root", root.string()});
  REQUIRE(destroyed.exitCode == 0);
  CHECK_FALSE(std::filesystem::exists(root));
  for (const auto& n : state["nodes"]) {
    const int pid = n["pid"];
    CHECK(eventually([&] { return kill(pid, 0) != 0; }, 5s));
  }
}

TEST_CASE(
    "with the keelconfig cluster create wrote, whose context names every node, config renew and generate "
    "ask the endpoint's node; -n with several nodes is still refused",
    "[cluster]") {
  TempDir dir;
  TempDir libexec;
  const auto root = createLocalCluster(dir, libexec, 1);
  const auto kc = root / "keelconfig";
  const auto crtOf = [](const std::filesystem::path& file) {
    const auto cfg = nlohmann::json::parse(readFile(file));
    return cfg["contexts"][cfg["context"].get<std::string>()]["crt"].get<std::string>();
  };
  const auto nodesOf = [](const std::filesystem::path& file) {
    const auto cfg = nlohmann::json::parse(readFile(file));
    return cfg["contexts"][cfg["context"].get<std::string>()]["nodes"];
  };
  const auto before = crtOf(kc);
  REQUIRE(nodesOf(kc).size() == 2);

  const auto renewed = keelctl({"config", "renew"}, kc);
  REQUIRE(renewed.exitCode == 0);
  CHECK_THAT(renewed.out, ContainsSubstring("renewed the client certificate"));
  CHECK(crtOf(kc) != before);
  CHECK(nodesOf(kc).size() == 2);
  // The renewed config still reaches every node.
  const auto version = keelctl({"version"}, kc);
  CHECK(version.exitCode == 0);
  CHECK_THAT(version.out, ContainsSubstring("127.0.1.2"));

  CHECK(keelctl({"config", "generate", (dir / "reader.keelconfig").string(), "--roles", "os:reader"}, kc)
            .exitCode == 0);
  CHECK(keelctl({"version"}, dir / "reader.keelconfig").exitCode == 0);

  const auto several = keelctl({"-n", "127.0.1.1,127.0.1.2", "config", "renew"}, kc);
  CHECK(several.exitCode != 0);
  CHECK_THAT(several.err, ContainsSubstring("expected at most one node with -n, found 2"));
  const auto renewedCrt = crtOf(kc);
  CHECK(keelctl({"-n", "127.0.1.1", "config", "renew"}, kc).exitCode == 0);
  CHECK(crtOf(kc) != renewedCrt);

  // Which node an upgrade reboots is never taken from the context's list.
  writeFile(dir / "root.squashfs", "not an image");
  const auto upgrade = keelctl({"upgrade", (dir / "root.squashfs").string(), "--yes"}, kc);
  CHECK(upgrade.exitCode != 0);
  CHECK_THAT(upgrade.err, ContainsSubstring("the context names 2: name the one to upgrade with -n"));

  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}

TEST_CASE("health reports a service that is not running with exit code 4", "[cluster]") {
  TempDir dir;
  TempDir libexec;
  chmod(dir.path().c_str(), 0711);
  installDaemons(libexec);
  // An extension that never stays up.
  writeFile(dir / "patch.json",
            R"({"machine": {"extensions": [{"name": "flaky", "command": "/bin/false"}]}})");
  const auto root = dir / "cluster";
  REQUIRE(keelctl({"cluster", "create", "--root", root.string(), "--machined", MACHINED_PATH, "--libexec",
                   libexec.path().string(), "--api-port", std::to_string(freePort()), "--join-port",
                   std::to_string(freePort()), "--config-patch", (dir / "patch.json").string()})
              .exitCode == 0);
  const auto health = keelctl({"health"}, root / "keelconfig");
  CHECK(health.exitCode == 4);
  CHECK_THAT(health.err, ContainsSubstring("127.0.1.1: not running: "));
  CHECK_THAT(health.err, ContainsSubstring("flaky"));
  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}

TEST_CASE("cluster commands explain what is missing", "[cluster]") {
  TempDir dir;
  const auto noBinaries =
      keelctl({"cluster", "create", "--root", (dir / "c").string(), "--machined", "/nonexistent/machined"});
  CHECK(noBinaries.exitCode != 0);
  CHECK_THAT(noBinaries.err, ContainsSubstring("no machined binary (--machined) at /nonexistent/machined"));
  const auto noCluster = keelctl({"cluster", "show", "--root", (dir / "none").string()});
  CHECK(noCluster.exitCode != 0);
  CHECK_THAT(noCluster.err, ContainsSubstring("holds no cluster"));
  CHECK(keelctl({"cluster", "destroy", "--root", (dir / "none").string()}).exitCode != 0);
}

TEST_CASE("cluster create refuses a root or libexec the nodes' services cannot reach, and writes nothing",
          "[cluster]") {
  if (geteuid() != 0) SKIP("only root starts services under accounts of their own");
  TempDir dir;  // 0700, like /root
  TempDir libexec;
  installDaemons(libexec);
  const auto root = dir / "deeper" / "cluster";
  const auto hidden = keelctl({"cluster", "create", "--root", root.string(), "--machined", MACHINED_PATH,
                               "--libexec", libexec.path().string(), "--api-port", std::to_string(freePort()),
                               "--join-port", std::to_string(freePort())});
  CHECK(hidden.exitCode != 0);
  CHECK_THAT(hidden.err, ContainsSubstring("--root " + root.string() + " is out of reach of the nodes' services"));
  CHECK_THAT(hidden.err, ContainsSubstring(dir.path().string() + " is not searchable by others (mode 0700)"));
  CHECK_FALSE(std::filesystem::exists(dir / "deeper"));

  chmod(dir.path().c_str(), 0711);
  chmod(libexec.path().c_str(), 0700);
  const auto privateLibexec = keelctl({"cluster", "create", "--root", root.string(), "--machined", MACHINED_PATH,
                                       "--libexec", libexec.path().string()});
  CHECK(privateLibexec.exitCode != 0);
  CHECK_THAT(privateLibexec.err, ContainsSubstring("--libexec " + libexec.path().string() + " is out of reach"));
  CHECK_FALSE(std::filesystem::exists(dir / "deeper"));
}

TEST_CASE("cluster create stops at once, saying which, when a node's trustd cannot run", "[cluster]") {
  TempDir dir;
  TempDir libexec;
  chmod(dir.path().c_str(), 0711);
  installDaemons(libexec);
  // A trustd that exits at once: machined restarts it a few times, then gives up.
  std::filesystem::remove(libexec / "trustd");
  keel::testing::writeFile(libexec / "trustd", "#!/bin/sh\nexit 2\n");
  chmod((libexec / "trustd").c_str(), 0755);
  const auto root = dir / "cluster";
  const auto made = keelctl({"cluster", "create", "--workers", "0", "--root", root.string(), "--machined",
                             MACHINED_PATH, "--libexec", libexec.path().string(), "--api-port",
                             std::to_string(freePort()), "--join-port", std::to_string(freePort())});
  CHECK(made.exitCode != 0);
  CHECK_THAT(made.err, ContainsSubstring("node 127.0.1.1 (controlplane): machined gave up restarting trustd (its log: "));
  CHECK_THAT(made.err, ContainsSubstring("was stopped again"));
  const auto show = keelctl({"cluster", "show", "--root", root.string()});
  CHECK_THAT(show.out, ContainsSubstring("stopped"));
  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}
