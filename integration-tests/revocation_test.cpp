// Revocation as an operator and an attacker meet it on a real local cluster (a control
// plane and a worker on 127.0.1.x): a revoked reader is refused by every apid, the audit
// lines say why, an unrevoked one goes on working, and the list survives trustd's restart.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;

ProcessResult keelctl(std::vector<std::string> args, const std::filesystem::path& keelconfig = {}) {
  return runKeelctl(std::move(args), keelconfig);
}

std::string crtOf(const std::filesystem::path& file) {
  const auto cfg = nlohmann::json::parse(readFile(file));
  return cfg["contexts"][cfg["context"].get<std::string>()]["crt"].get<std::string>();
}

// Every audit line of the node's apid that mentions `text`.
bool auditMentions(const std::filesystem::path& nodeRoot, const std::string& text) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(nodeRoot)) {
    if (entry.path().filename() != "audit.log") continue;
    if (readFile(entry.path()).find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE(
    "a revoked reader is refused by the control plane and by a worker within 30 s, an unrevoked one goes on, "
    "and the list survives a restart of trustd",
    "[cluster][revocation]") {
  TempDir dir;
  TempDir libexec;
  int apiPort = 0;
  const auto root = createLocalCluster(dir, libexec, 1, &apiPort);
  const std::string port = std::to_string(apiPort);
  const auto admin = root / "keelconfig";
  const auto leaked = dir / "leaked.keelconfig";
  const auto kept = dir / "kept.keelconfig";
  REQUIRE(keelctl({"config", "generate", leaked.string(), "--roles", "os:reader", "--identity", "leaked"}, admin)
              .exitCode == 0);
  REQUIRE(keelctl({"config", "generate", kept.string(), "--roles", "os:reader", "--identity", "kept"}, admin)
              .exitCode == 0);
  const std::string worker = "127.0.1.2:" + port;
  // Both readers reach both nodes, through the control plane and straight at the worker.
  for (const auto& kc : {leaked, kept}) {
    REQUIRE(keelctl({"-n", "127.0.1.1,127.0.1.2", "version"}, kc).exitCode == 0);
    REQUIRE(keelctl({"-e", worker, "-n", "127.0.1.2", "version"}, kc).exitCode == 0);
  }

  // Bad input changes nothing.
  writeFile(dir / "junk.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  CHECK(keelctl({"config", "revoke", "--cert", (dir / "junk.crt").string()}, admin).exitCode != 0);
  const auto badSerial = keelctl({"config", "revoke", "--serial", "xyz"}, admin);
  CHECK(badSerial.exitCode != 0);
  CHECK_THAT(badSerial.err, ContainsSubstring("hexadecimal"));
  // A reader may not revoke, nor list.
  CHECK(keelctl({"config", "revoke", "--serial", "0a1b"}, kept).exitCode != 0);
  CHECK(keelctl({"config", "revoked"}, kept).exitCode != 0);
  // The admin's own certificate needs --self.
  writeFile(dir / "admin.crt", crtOf(admin));
  const auto self = keelctl({"config", "revoke", "--cert", (dir / "admin.crt").string()}, admin);
  CHECK(self.exitCode != 0);
  CHECK_THAT(self.err, ContainsSubstring("--self"));
  const auto none = keelctl({"config", "revoked", "-o", "json"}, admin);
  REQUIRE(none.exitCode == 0);
  CHECK_THAT(none.out, !ContainsSubstring("serial"));

  writeFile(dir / "leaked.crt", crtOf(leaked));
  const auto revoked = keelctl({"config", "revoke", "--cert", (dir / "leaked.crt").string()}, admin);
  REQUIRE(revoked.exitCode == 0);
  CHECK_THAT(revoked.out, ContainsSubstring("revoked serial"));

  ProcessResult cp;
  ProcessResult direct;
  CHECK(eventually(
      [&] {
        cp = keelctl({"-n", "127.0.1.1", "version"}, leaked);
        direct = keelctl({"-e", worker, "-n", "127.0.1.2", "version"}, leaked);
        return cp.exitCode != 0 && direct.exitCode != 0;
      },
      30s));
  CHECK_THAT(cp.err, ContainsSubstring("revoked"));
  CHECK_THAT(direct.err, ContainsSubstring("revoked"));
  CHECK(auditMentions(root / "nodes" / "127.0.1.1", "is revoked"));
  CHECK(auditMentions(root / "nodes" / "127.0.1.2", "is revoked"));
  CHECK(keelctl({"-n", "127.0.1.1,127.0.1.2", "version"}, kept).exitCode == 0);
  CHECK(keelctl({"-e", worker, "-n", "127.0.1.2", "version"}, kept).exitCode == 0);
  // Renewing is no way back in.
  CHECK(keelctl({"config", "renew"}, leaked).exitCode != 0);

  const auto listed = keelctl({"config", "revoked"}, admin);
  REQUIRE(listed.exitCode == 0);
  CHECK_THAT(listed.out, ContainsSubstring("leaked"));

  // trustd restarts from its state: the list is still there and still enforced.
  REQUIRE(keelctl({"-n", "127.0.1.1", "service", "trustd", "restart"}, admin).exitCode == 0);
  ProcessResult after;
  CHECK(eventually(
      [&] {
        after = keelctl({"config", "revoked"}, admin);
        return after.exitCode == 0;
      },
      30s));
  CHECK_THAT(after.out, ContainsSubstring("leaked"));
  CHECK(keelctl({"-n", "127.0.1.1", "version"}, leaked).exitCode != 0);
  CHECK(keelctl({"-e", worker, "-n", "127.0.1.2", "version"}, leaked).exitCode != 0);

  CHECK(keelctl({"cluster", "destroy", "--root", root.string()}).exitCode == 0);
}
