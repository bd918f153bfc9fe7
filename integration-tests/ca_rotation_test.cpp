// CA rotation as an operator runs it on a real local cluster (a control plane and two
// workers on 127.0.1.x): `keelctl version` against every node keeps answering across a
// whole OS CA rotation, a certificate of the old CA is refused at the handshake once it
// is dropped, a rotation killed midway resumes, and every new CA parses under a strict
// DER parser. The rotation's duration is printed, as a figure, not a check.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <iostream>
#include <thread>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

ProcessResult keelctl(std::vector<std::string> args, const std::filesystem::path& keelconfig = {}) {
  return runKeelctl(std::move(args), keelconfig);
}

nlohmann::json currentContext(const std::filesystem::path& keelconfig) {
  const auto cfg = nlohmann::json::parse(readFile(keelconfig));
  return cfg["contexts"][cfg["context"].get<std::string>()];
}

ProcessResult strictCheck(const std::vector<std::filesystem::path>& files) {
  std::vector<std::string> argv = {"/usr/bin/python3", STRICT_DER_CHECK};
  for (const auto& f : files) argv.push_back(f.string());
  auto r = keel::testing::run(argv);
  UNSCOPED_INFO("strict_der_check: " << r.out << r.err);
  return r;
}

// The status table's ISSUING column for `node`.
std::string issuingOn(const std::string& statusJson, const std::string& node) {
  const auto j = nlohmann::json::parse(statusJson);
  for (const auto& m : j["messages"]) {
    if (m["metadata"].value("node", "") == node) return m.value("issuing", "");
  }
  return "";
}

}  // namespace

TEST_CASE("an OS CA rotation on a 1+2 cluster fails no call, then refuses the old CA's certificates; a killed "
          "rotation resumes",
          "[cluster][rotate-ca]") {
  TempDir dir;
  TempDir libexec;
  int apiPort = 0;
  const auto root = createLocalCluster(dir, libexec, 2, &apiPort);
  const std::string port = std::to_string(apiPort);
  const auto admin = root / "keelconfig";
  const auto reader = dir / "reader.keelconfig";
  REQUIRE(keelctl({"config", "generate", reader.string(), "--roles", "os:reader", "--identity", "old-reader"}, admin)
              .exitCode == 0);
  const std::string oldCa = currentContext(admin)["ca"];

  const auto before = keelctl({"rotate-ca", "--status"}, admin);
  REQUIRE(before.exitCode == 0);
  CHECK_THAT(before.out, ContainsSubstring("no rotation of the os CA under way"));
  // Bad input changes nothing.
  CHECK(keelctl({"rotate-ca", "--kind", "ssh"}, admin).exitCode != 0);
  CHECK(keelctl({"rotate-ca", "--secrets", (dir / "missing.json").string()}, admin).exitCode != 0);
  CHECK(keelctl({"rotate-ca"}, reader).exitCode != 0);  // a reader may not
  CHECK(currentContext(admin)["ca"] == oldCa);
  CHECK_FALSE(std::filesystem::exists(root / "keelconfig.rotate-ca-os"));

  // Every node answers `version` throughout, each call a new keelctl reading the keelconfig
  // the rotation rewrites.
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  std::vector<std::string> failures;
  std::thread loop([&] {
    while (!stop.load()) {
      auto r = keel::testing::run({KEELCTL_PATH, "--keelconfig", admin.string(), "version"},
                                  {.workingDirectory = std::nullopt, .extraEnv = {{"KEELCONFIG", ""}},
                                   .stdinData = "", .timeout = 60s});
      calls.fetch_add(1);
      if (r.exitCode != 0) failures.push_back(r.out + r.err);
    }
  });
  const auto rotated = keelctl({"rotate-ca"}, admin);
  stop.store(true);
  loop.join();
  std::cout << "OS CA rotation on 1+2 nodes: " << rotated.out << std::flush;
  REQUIRE(rotated.exitCode == 0);
  CHECK_THAT(rotated.out, ContainsSubstring("rotated the os CA"));
  INFO("keelctl version failures: " << (failures.empty() ? "" : failures.front()));
  CHECK(failures.empty());
  CHECK(calls.load() >= 3);

  const std::string newCa = currentContext(admin)["ca"];
  CHECK(newCa != oldCa);
  CHECK(newCa.find(oldCa) == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(root / "keelconfig.rotate-ca-os"));
  const auto after = keelctl({"rotate-ca", "--status"}, admin);
  REQUIRE(after.exitCode == 0);
  CHECK_THAT(after.out, ContainsSubstring("no rotation of the os CA under way"));
  // The new CA and the renewed admin certificate parse under a strict DER parser.
  CHECK(strictCheck({admin}).exitCode == 0);

  // Straight at a worker too.
  CHECK(keelctl({"-e", "127.0.1.3:" + port, "-n", "127.0.1.3", "version"}, admin).exitCode == 0);
  // The old reader, even trusting the new CA, is refused at the handshake by every apid.
  auto readerCfg = nlohmann::json::parse(readFile(reader));
  readerCfg["contexts"][readerCfg["context"].get<std::string>()]["ca"] = newCa;
  writeFile(reader, readerCfg.dump(2));
  chmod(reader.c_str(), 0600);
  // (apid re-reads its trust bundle every 2 s.)
  for (const std::string node : {"127.0.1.1", "127.0.1.2", "127.0.1.3"}) {
    ProcessResult refused;
    CHECK(eventually(
        [&] {
          refused = keelctl({"-e", node + ":" + port, "-n", node, "version"}, reader);
          return refused.exitCode != 0;
        },
        10s));
    CHECK_THAT(refused.err, ContainsSubstring("rejected the client certificate"));
  }

  // A Kubernetes CA rotation killed once its first step is under way is at a step
  // between, says so, and finishes when run again; the secrets bundle follows.
  const auto secrets = root / "secrets.json";
  const auto state = root / "keelconfig.rotate-ca-kubernetes";
  std::string nextFingerprint;
  {
    keel::testing::ChildProcess killed({KEELCTL_PATH, "--keelconfig", admin.string(), "rotate-ca", "--kind",
                                        "kubernetes", "--secrets", secrets.string()},
                                       dir / "killed.log", {{"KEELCONFIG", ""}});
    REQUIRE(eventually(
        [&] {
          if (!std::filesystem::exists(state)) return false;
          const auto j = nlohmann::json::parse(readFile(state), nullptr, false);
          if (!j.is_object() || j.value("step", "") != "accept") return false;
          nextFingerprint = j.value("new", "");
          return true;
        },
        60s));
    killed.signal(SIGKILL);
    killed.wait(10s);
  }
  const auto midway = keelctl({"rotate-ca", "--kind", "kubernetes", "--status"}, admin);
  REQUIRE(midway.exitCode == 0);
  CHECK_THAT(midway.out, ContainsSubstring("rotation of the kubernetes CA from"));
  CHECK(strictCheck({state}).exitCode == 0);
  const auto resumed = keelctl({"rotate-ca", "--kind", "kubernetes", "--secrets", secrets.string()}, admin);
  REQUIRE(resumed.exitCode == 0);
  CHECK_THAT(resumed.out, ContainsSubstring("resuming the rotation"));
  const auto done = keelctl({"rotate-ca", "--kind", "kubernetes", "--status", "-o", "json"}, admin);
  REQUIRE(done.exitCode == 0);
  for (const std::string node : {"127.0.1.1", "127.0.1.2", "127.0.1.3"}) {
    CHECK(issuingOn(done.out, node) == nextFingerprint);
  }
  CHECK(strictCheck({secrets}).exitCode == 0);
  // The bundle issues with the new Kubernetes CA and accepts nothing else.
  const auto bundle = nlohmann::json::parse(readFile(secrets));
  CHECK_FALSE(bundle["certs"]["k8s"].contains("accepted"));

  // etcd: control planes only; workers hold none and are left as they are.
  const auto etcd = keelctl({"rotate-ca", "--kind", "etcd"}, admin);
  REQUIRE(etcd.exitCode == 0);
  CHECK_THAT(etcd.out, ContainsSubstring("rotated the etcd CA"));
  // A worker that is down stops a rotation before it changes anything, and is named; once
  // it is back, the rotation takes it through every step.
  const auto cluster = nlohmann::json::parse(readFile(root / "cluster.json"));
  pid_t workerPid = 0;
  for (const auto& n : cluster["nodes"]) {
    if (n["address"] == "127.0.1.3") workerPid = n["pid"].get<pid_t>();
  }
  REQUIRE(workerPid > 0);
  std::vector<std::string> workerArgv;
  {
    const std::string cmdline = readFile("/proc/" + std::to_string(workerPid) + "/cmdline");
    for (size_t at = 0; at < cmdline.size();) {
      const size_t end = cmdline.find('\0', at);
      workerArgv.push_back(cmdline.substr(at, end - at));
      at = end == std::string::npos ? cmdline.size() : end + 1;
    }
  }
  REQUIRE(kill(workerPid, SIGTERM) == 0);
  REQUIRE(eventually([&] { return kill(workerPid, 0) != 0; }, 30s));
  const std::string caBefore = currentContext(admin)["ca"];
  const auto blocked = keelctl({"rotate-ca"}, admin);
  CHECK(blocked.exitCode != 0);
  CHECK_THAT(blocked.err, ContainsSubstring("127.0.1.3"));
  CHECK(currentContext(admin)["ca"] == caBefore);
  const auto waiting = keelctl({"rotate-ca", "--status"}, admin);
  CHECK_THAT(waiting.out, ContainsSubstring("127.0.1.3 (not answering)"));
  keel::testing::ChildProcess restarted(workerArgv, dir / "restarted-worker.log");
  REQUIRE(eventually([&] { return keelctl({"-n", "127.0.1.3", "version"}, admin).exitCode == 0; }, 60s));
  const auto caughtUp = keelctl({"rotate-ca"}, admin);
  REQUIRE(caughtUp.exitCode == 0);
  CHECK_THAT(caughtUp.out, ContainsSubstring("resuming the rotation"));
  CHECK_THAT(caughtUp.out, ContainsSubstring("on 3 nodes"));

  // After all that, the admin still reaches every node, through the control plane and
  // straight at the worker that was down.
  CHECK(keelctl({"version"}, admin).exitCode == 0);
  CHECK(keelctl({"-e", "127.0.1.3:" + port, "-n", "127.0.1.3", "version"}, admin).exitCode == 0);
  restarted.signal(SIGTERM);
  restarted.wait(30s);

  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}
