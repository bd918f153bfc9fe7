#include "src/trust/apid_identity.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <sys/stat.h>

#include "keel/config/ca_rotation.h"
#include "keel/config/file_io.h"
#include "keel/testing/testing.h"

#include "test_config.h"

namespace keel::machined {
namespace {

namespace fs = std::filesystem;

std::string readAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned modeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

ApidIdentityRequest request(const fs::path& dir) {
  ApidIdentityRequest r;
  r.stateDir = dir;
  r.nodeAddress = "127.0.1.1";
  r.hostname = "node-a";
  r.trustdSocket = "/run/keel-trustd/trustd.sock";
  r.apiPort = 50000;
  r.joinPort = 50101;
  return r;
}

TEST_CASE("machined mints nothing: apid's state holds the OS CA bundle, and stale keys are removed",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  const auto cfg = testing::controlPlaneConfig();
  for (const char* stale : {"server.key", "server.crt", "impersonator.key", "impersonator.crt"}) {
    keel::testing::writeFile(dir / stale, "old");
  }
  auto written = prepareApidState(cfg, request(dir.path()));
  REQUIRE(written.ok());
  CHECK(*written == std::vector<fs::path>{dir / "ca.crt"});
  CHECK(readAll(dir / "ca.crt") == cfg.ca.crt);
  CHECK(modeOf(dir / "ca.crt") == 0600);
  for (const char* name : {"server.key", "server.crt", "impersonator.key", "impersonator.crt"}) {
    INFO(name);
    CHECK_FALSE(fs::exists(dir / name));
  }
}

// What machined writes besides the identity, for a config the reader accepts.
contracts::ApidConfig apidBase(const fs::path& dir) {
  contracts::ApidConfig apid;
  apid.nodeAddress = "127.0.1.1";
  apid.stateDir = dir;
  apid.listen = "127.0.1.1:50000";
  apid.peerPort = 50000;  // the reader's default: the port of listen
  apid.backendsDir = dir / "backends.d";
  return apid;
}

TEST_CASE("a control plane's apid asks the local trustd, forwards, and serves the join listener", "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  cfg.certSans = {"api.example.test", "10.9.8.7", "127.0.1.1"};
  auto apid = apidBase(dir.path());
  REQUIRE(apidIdentityConfig(cfg, request(dir.path()), apid).isOk());
  CHECK(apid.tls.cert == dir / "server.crt");
  CHECK(apid.acceptedCas == dir / "ca.crt");
  REQUIRE(apid.impersonator.has_value());
  CHECK(apid.impersonator->key == dir / "impersonator.key");
  REQUIRE(apid.identity.has_value());
  CHECK(apid.identity->trustdSocket == "/run/keel-trustd/trustd.sock");
  CHECK(apid.identity->joinToken.empty());
  CHECK(apid.identity->sans ==
        std::vector<std::string>{"127.0.1.1", "node-a", "127.0.0.1", "api.example.test", "10.9.8.7"});
  REQUIRE(apid.join.has_value());
  CHECK(apid.join->listen == "127.0.1.1:50101");
  // The file machined writes from it is one apid reads back whole.
  const auto back = contracts::parseApidConfig(contracts::serializeApidConfig(apid));
  REQUIRE(back.ok());
  CHECK(*back == apid);
}

TEST_CASE("a worker's apid joins the control plane's endpoint with the join token, and never forwards",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  cfg.type = config::MachineType::kWorker;
  cfg.ca.key.clear();
  cfg.controlPlaneEndpoint = "https://10.0.0.10:50000";
  auto apid = apidBase(dir.path());
  REQUIRE(apidIdentityConfig(cfg, request(dir.path()), apid).isOk());
  REQUIRE(apid.identity.has_value());
  CHECK(apid.identity->joinEndpoints == std::vector<std::string>{"10.0.0.10:50101"});
  CHECK(apid.identity->joinToken == cfg.token);
  CHECK_FALSE(apid.impersonator.has_value());
  CHECK_FALSE(apid.join.has_value());
  CHECK(apid.identity->sans == std::vector<std::string>{"127.0.1.1"});
  const auto back = contracts::parseApidConfig(contracts::serializeApidConfig(apid));
  REQUIRE(back.ok());
  CHECK(*back == apid);
}

TEST_CASE("a worker whose config names no usable control-plane endpoint gets no apid config", "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  cfg.type = config::MachineType::kWorker;
  cfg.controlPlaneEndpoint = "not an endpoint";
  auto apid = apidBase(dir.path());
  const Status st = apidIdentityConfig(cfg, request(dir.path()), apid);
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Matchers::ContainsSubstring("cluster.controlPlane.endpoint"));
}

TEST_CASE("trustd's config carries the CA, every accepted token, lifetimes and apid's uid", "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  cfg.trustd.acceptedTokens = {"zzzzzz.zzzzzzzzzzzzzzzz"};
  cfg.trustd.nodeCertTtl = std::chrono::seconds(30);
  cfg.trustd.joinExtraSans = {"127.0.1.0/24"};
  cfg.trustd.joinIpv6PrefixBits = 48;
  contracts::TrustdConfig trustd;
  REQUIRE(trustdConfig(cfg, request(dir.path()), {1234}, trustd).isOk());
  CHECK(trustd.joinIpv6PrefixBits == 48);
  CHECK(trustd.caKeyPem == cfg.ca.key);
  CHECK(trustd.joinTokens == std::vector<std::string>{cfg.token, "zzzzzz.zzzzzzzzzzzzzzzz"});
  CHECK(trustd.nodeCertTtl == std::chrono::seconds(30));
  CHECK(trustd.joinExtraSans == std::vector<std::string>{"127.0.1.0/24"});
  CHECK(trustd.allowedUids == std::vector<uid_t>{1234});
  CHECK(trustd.apiEndpoint == "127.0.1.1:50000");
}

TEST_CASE("a new token set reaches trustd's config, or a worker apid's, and nothing else of them changes",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  contracts::TrustdConfig written;
  written.socket = "/run/keel-trustd/trustd.sock";
  written.nodeAddress = "127.0.1.1";
  REQUIRE(trustdConfig(cfg, request(dir.path()), {1234}, written).isOk());
  const fs::path file = dir / "config.json";
  REQUIRE(config::writePrivateFile(file, contracts::serializeTrustdConfig(written), config::Overwrite::kNo).isOk());
  CHECK(rewriteServiceTrust(cfg, file).value() == false);  // nothing to change

  cfg.trustd.acceptedTokens = {"zzzzzz.zzzzzzzzzzzzzzzz"};
  REQUIRE(rewriteServiceTrust(cfg, file).value());
  auto after = contracts::parseTrustdConfig(readAll(file));
  REQUIRE(after.ok());
  CHECK(after->joinTokens == std::vector<std::string>{cfg.token, "zzzzzz.zzzzzzzzzzzzzzzz"});
  after->joinTokens = written.joinTokens;
  CHECK(*after == written);
  CHECK(modeOf(file) == 0600);

  auto worker = testing::controlPlaneConfig();
  worker.type = config::MachineType::kWorker;
  worker.ca.key.clear();
  worker.controlPlaneEndpoint = "https://10.0.0.10:50000";
  auto apid = apidBase(dir.path());
  REQUIRE(apidIdentityConfig(worker, request(dir.path()), apid).isOk());
  const fs::path apidFile = dir / "apid.json";
  REQUIRE(config::writePrivateFile(apidFile, contracts::serializeApidConfig(apid), config::Overwrite::kNo).isOk());
  CHECK(rewriteServiceTrust(worker, apidFile).value() == false);  // the same token
  worker.token = "yyyyyy.yyyyyyyyyyyyyyyy";
  REQUIRE(rewriteServiceTrust(worker, apidFile).value());
  const auto apidAfter = contracts::readApidConfigFile(apidFile);
  REQUIRE(apidAfter.ok());
  CHECK(apidAfter->identity->joinToken == "yyyyyy.yyyyyyyyyyyyyyyy");
  apid.identity->joinToken = "yyyyyy.yyyyyyyyyyyyyyyy";
  CHECK(*apidAfter == apid);  // nothing else changed
}

TEST_CASE("apid's CA bundle follows the OS CAs of the machine config, and a link planted in apid's directory "
          "changes nothing outside it",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  const SystemClock clock;
  auto cfg = testing::controlPlaneConfig();
  REQUIRE(rewriteApidCaBundle(cfg, dir.path(), std::nullopt).value());
  CHECK(pki::Certificate::bundleFromPem(readAll(dir / "ca.crt")).value().size() == 1);
  CHECK(modeOf(dir / "ca.crt") == 0600);
  CHECK(rewriteApidCaBundle(cfg, dir.path(), std::nullopt).value() == false);  // nothing to change

  const auto next = config::generateRotationCa(config::CaKind::kOs, clock).value();
  const std::string oldFp = config::caFingerprint(cfg.ca.crt).value();
  const std::string newFp = config::caFingerprint(next.certificate.toPem()).value();
  const auto both = config::changeCertificateAuthorities(
                        cfg, config::CaKind::kOs,
                        {.accept = next.certificate.toPem(), .issueCrt = next.certificate.toPem(),
                         .issueKey = next.key.toPem(), .drop = ""})
                        .value();
  REQUIRE(rewriteApidCaBundle(both, dir.path(), std::nullopt).value());
  const auto bundle = pki::Certificate::bundleFromPem(readAll(dir / "ca.crt")).value();
  REQUIRE(bundle.size() == 2);
  CHECK(bundle[0].fingerprintSha256() == newFp);  // the issuing CA first
  CHECK(bundle[1].fingerprintSha256() == oldFp);

  // apid could plant a link where the next bundle is written: it is replaced, not followed.
  const fs::path victim = dir / "victim";
  REQUIRE(config::writePrivateFile(victim, "untouched", config::Overwrite::kNo).isOk());
  fs::create_symlink(victim, dir / ".ca.crt.next");
  const auto dropped =
      config::changeCertificateAuthorities(both, config::CaKind::kOs, {.accept = "", .issueCrt = "", .issueKey = "",
                                                                       .drop = oldFp})
          .value();
  REQUIRE(rewriteApidCaBundle(dropped, dir.path(), std::nullopt).value());
  CHECK(readAll(victim) == "untouched");
  CHECK_FALSE(fs::is_symlink(dir / "ca.crt"));
  const auto after = pki::Certificate::bundleFromPem(readAll(dir / "ca.crt")).value();
  REQUIRE(after.size() == 1);
  CHECK(after[0].fingerprintSha256() == newFp);
}

}  // namespace
}  // namespace keel::machined
