#include "src/apid_identity.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <sys/stat.h>

#include "keel/pki/pki.h"
#include "keel/testing/testing.h"

#include "test_config.h"

namespace keel::machined {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;

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

pki::Certificate readCert(const fs::path& path) {
  auto cert = pki::Certificate::fromPem(readAll(path));
  REQUIRE(cert.ok());
  return *cert;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

TEST_CASE("a control plane's apid gets a serving certificate from the OS CA with the node's names",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  cfg.certSans = {"api.example.test", "10.9.8.7"};
  ManualClock clock(std::chrono::system_clock::now());
  auto files = provisionApidIdentity(cfg, {dir.path(), "127.0.1.1", "node-a"}, clock);
  REQUIRE(files.ok());
  REQUIRE(files->hasServingIdentity());

  CHECK(readAll(dir / "ca.crt") == cfg.ca.crt);
  auto ca = pki::Certificate::fromPem(cfg.ca.crt);
  REQUIRE(ca.ok());
  // The serving chain: apid's certificate, then the CA's.
  auto chain = pki::Certificate::bundleFromPem(readAll(dir / "server.crt"));
  REQUIRE(chain.ok());
  REQUIRE(chain->size() == 2);
  CHECK((*chain)[1].toPem() == ca->toPem());
  const auto cert = (*chain)[0];
  pki::VerifyOptions options;
  options.requiredUsage = pki::ExtendedKeyUsage::kServerAuth;
  CHECK(pki::verifyCertificate(cert, {*ca}, options, clock).isOk());
  CHECK(cert.extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kServerAuth});
  CHECK(cert.subject().commonName == "127.0.1.1");
  CHECK(cert.subject().organizations.empty());
  const auto sans = cert.subjectAltNames();
  CHECK(contains(sans.ipAddresses, "127.0.1.1"));
  CHECK(contains(sans.ipAddresses, "127.0.0.1"));
  CHECK(contains(sans.ipAddresses, "10.9.8.7"));
  CHECK(contains(sans.dnsNames, "node-a"));
  CHECK(contains(sans.dnsNames, "api.example.test"));
  // About a year, minted now.
  CHECK(cert.notAfter() - clock.now() > std::chrono::hours(24 * 364));
  CHECK(cert.notAfter() - clock.now() <= kApidCertificateLifetime);

  auto key = pki::PrivateKey::fromPem(readAll(dir / "server.key"));
  REQUIRE(key.ok());
  CHECK(key->type() == pki::KeyType::kEcdsaP256);
  CHECK(cert.matchesKey(*key));
  for (const char* name : {"ca.crt", "server.key", "server.crt", "impersonator.key", "impersonator.crt"}) {
    INFO(name);
    CHECK(modeOf(dir / name) == 0600);
  }
}

TEST_CASE("a control plane's apid gets an os:impersonator client certificate for forwarding",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  const auto cfg = testing::controlPlaneConfig();
  ManualClock clock(std::chrono::system_clock::now());
  auto files = provisionApidIdentity(cfg, {dir.path(), "127.0.1.1", "node-a"}, clock);
  REQUIRE(files.ok());
  auto ca = pki::Certificate::fromPem(cfg.ca.crt);
  REQUIRE(ca.ok());
  const auto cert = readCert(dir / "impersonator.crt");
  pki::VerifyOptions options;
  options.requiredUsage = pki::ExtendedKeyUsage::kClientAuth;
  CHECK(pki::verifyCertificate(cert, {*ca}, options, clock).isOk());
  CHECK(cert.extendedKeyUsages() == std::vector{pki::ExtendedKeyUsage::kClientAuth});
  CHECK(cert.subject().organizations == std::vector<std::string>{"os:impersonator"});
  CHECK(cert.subject().commonName == "apid@127.0.1.1");
  auto key = pki::PrivateKey::fromPem(readAll(dir / "impersonator.key"));
  REQUIRE(key.ok());
  CHECK(cert.matchesKey(*key));

  const auto json = apidIdentityConfig(dir.path(), *files);
  CHECK(json["tls"]["cert"] == (dir / "server.crt").string());
  CHECK(json["tls"]["ca"] == (dir / "ca.crt").string());
  CHECK(json["impersonator"]["key"] == (dir / "impersonator.key").string());
}

TEST_CASE("a worker's apid gets only the OS CA certificate, even where a control plane ran before",
          "[apid_identity]") {
  keel::testing::TempDir dir;
  auto cfg = testing::controlPlaneConfig();
  ManualClock clock(std::chrono::system_clock::now());
  REQUIRE(provisionApidIdentity(cfg, {dir.path(), "127.0.1.2", "node-b"}, clock).ok());
  cfg.ca.key.clear();
  auto files = provisionApidIdentity(cfg, {dir.path(), "127.0.1.2", "node-b"}, clock);
  REQUIRE(files.ok());
  CHECK_FALSE(files->hasServingIdentity());
  CHECK(files->all() == std::vector<fs::path>{dir / "ca.crt"});
  CHECK(readAll(dir / "ca.crt") == cfg.ca.crt);
  CHECK(modeOf(dir / "ca.crt") == 0600);
  for (const char* name : {"server.key", "server.crt", "impersonator.key", "impersonator.crt"}) {
    INFO(name);
    CHECK_FALSE(fs::exists(dir / name));
  }
  const auto json = apidIdentityConfig(dir.path(), *files);
  CHECK(json.contains("tls"));
  CHECK_FALSE(json.contains("impersonator"));
}

TEST_CASE("provisioning refuses a node without an address", "[apid_identity]") {
  keel::testing::TempDir dir;
  ManualClock clock(std::chrono::system_clock::now());
  auto files = provisionApidIdentity(testing::controlPlaneConfig(), {dir.path(), "", "node-a"}, clock);
  REQUIRE_FALSE(files.ok());
  CHECK(files.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(files.status().message(), ContainsSubstring("address"));
}

}  // namespace
}  // namespace keel::machined
