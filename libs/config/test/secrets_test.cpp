#include "keel/config/secrets.h"

#include <sys/stat.h>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>
#include <functional>
#include <regex>
#include <set>

#include "keel/config/base64.h"
#include "keel/testing/testing.h"
#include "test_util.h"

using namespace keel::config;
using keel::StatusCode;
using keel::testing::TempDir;
using nlohmann::json;

namespace {

std::string mutate(const std::function<void(json&)>& change) {
  json doc = json::parse(serializeSecrets(testutil::bundle()));
  change(doc);
  return doc.dump();
}

std::string errorOf(const std::string& text) {
  auto r = parseSecrets(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  return r.status().message();
}

bool startsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("a new bundle has four separate CAs with the expected subjects") {
  const auto& b = testutil::bundle();
  using keel::pki::DistinguishedName;
  CHECK(b.osCa.certificate.subject() == DistinguishedName{"keel-os", {"keel-os"}});
  CHECK(b.kubernetesCa.certificate.subject() == DistinguishedName{"kubernetes", {"kubernetes"}});
  CHECK(b.etcdCa.certificate.subject() == DistinguishedName{"etcd", {"etcd"}});
  CHECK(b.aggregatorCa.certificate.subject() == DistinguishedName{"front-proxy", {}});
  const std::set<std::string> keys = {b.osCa.key.publicKeyFingerprint(), b.kubernetesCa.key.publicKeyFingerprint(),
                                      b.etcdCa.key.publicKeyFingerprint(), b.aggregatorCa.key.publicKeyFingerprint(),
                                      b.serviceAccountKey.publicKeyFingerprint()};
  CHECK(keys.size() == 5);
  for (const auto* ca : {&b.osCa, &b.kubernetesCa, &b.etcdCa, &b.aggregatorCa}) {
    CHECK(ca->certificate.isCa());
    CHECK(ca->certificate.notBefore() <= testutil::fixedNow());
    // Ten years, give or take leap days.
    CHECK(ca->certificate.notAfter() - testutil::fixedNow() >= std::chrono::hours(24 * 3650));
    CHECK(ca->certificate.notAfter() - testutil::fixedNow() <= std::chrono::hours(24 * 3653));
  }
  CHECK(b.serviceAccountKey.type() == keel::pki::KeyType::kEcdsaP256);
}

TEST_CASE("a new bundle has well-formed tokens and 32-byte secrets") {
  const auto& b = testutil::bundle();
  const std::regex re("[a-z0-9]{6}\\.[a-z0-9]{16}");
  CHECK(std::regex_match(b.joinToken, re));
  CHECK(std::regex_match(b.bootstrapToken, re));
  CHECK(b.joinToken != b.bootstrapToken);
  for (const auto* s : {&b.clusterId, &b.clusterSecret, &b.secretboxKey}) CHECK(base64Decode(*s)->size() == 32);
  CHECK(b.clusterId != b.clusterSecret);
}

TEST_CASE("a bundle survives serialization unchanged") {
  const auto text = serializeSecrets(testutil::bundle());
  CHECK(json::parse(text)["version"] == kSecretsVersion);
  auto parsed = parseSecrets(text);
  REQUIRE(parsed.ok());
  CHECK(serializeSecrets(*parsed) == text);
}

TEST_CASE("loading names the offending field") {
  CHECK(startsWith(errorOf(mutate([](json& d) { d["certs"]["etcd"]["key"] = "garbage"; })), "certs.etcd.key: "));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["certs"]["os"]["crt"] = "garbage"; })), "certs.os.crt: "));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["tokens"]["join"] = "ABCDEF.0123456789abcdef"; })),
                   "tokens.join: invalid token"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["cluster"]["secret"] = "Zm9v"; })),
                   "cluster.secret: expected base64 of 32 bytes, found 3 bytes"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["cluster"].erase("id"); })), "cluster.id: missing"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["version"] = 2; })),
                   "version: unsupported version: expected 1, found 2"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["certs"]["k8s"]["crt"] = 5; })),
                   "certs.k8s.crt: expected a string, found a number"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["certs"]["etcds"] = json::object(); })),
                   "certs.etcds: unknown field"));
  CHECK(startsWith(errorOf(mutate([](json& d) { d["tokens"]["bootstrap"] = d["tokens"]["join"]; })),
                   "tokens.bootstrap: equals tokens.join"));
}

TEST_CASE("loading refuses a key that does not match its certificate") {
  const auto& b = testutil::bundle();
  auto msg = errorOf(mutate([&](json& d) { d["certs"]["etcd"]["key"] = b.osCa.key.toPem(); }));
  CHECK(startsWith(msg, "certs.etcd.key: does not match certs.etcd.crt"));
}

TEST_CASE("loading refuses two CAs sharing a key") {
  const auto& b = testutil::bundle();
  auto msg = errorOf(mutate([&](json& d) {
    d["certs"]["etcd"]["key"] = b.osCa.key.toPem();
    d["certs"]["etcd"]["crt"] = b.osCa.certificate.toPem();
  }));
  CHECK(startsWith(msg, "certs.etcd.key: is the same key as certs.os.key"));
}

TEST_CASE("loading refuses a leaf certificate where a CA belongs") {
  const auto& b = testutil::bundle();
  keel::ManualClock clock(testutil::fixedNow());
  auto key = keel::pki::PrivateKey::generate(keel::pki::KeyType::kEcdsaP256).value();
  auto csr = keel::pki::CertificateRequest::create(key, {.subject = {"leaf", {}}, .subjectAltNames = {}}).value();
  keel::pki::IssuePolicy policy;
  policy.extendedKeyUsages = {keel::pki::ExtendedKeyUsage::kClientAuth};
  auto leaf = keel::pki::issueCertificate(b.osCa, csr, policy, clock).value();
  auto msg = errorOf(mutate([&](json& d) {
    d["certs"]["k8s"]["crt"] = leaf.toPem();
    d["certs"]["k8s"]["key"] = key.toPem();
  }));
  CHECK(startsWith(msg, "certs.k8s.crt: expected a CA certificate"));
}

TEST_CASE("reading a secrets file checks presence, permissions and content") {
  TempDir dir;
  const auto path = dir / "secrets.json";
  auto missing = readSecretsFile(path);
  CHECK(missing.status().code() == StatusCode::kNotFound);

  REQUIRE(writeSecretsFile(path, testutil::bundle(), Overwrite::kNo).isOk());
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(readSecretsFile(path).ok());
  CHECK(writeSecretsFile(path, testutil::bundle(), Overwrite::kNo).code() == StatusCode::kAlreadyExists);

  chmod(path.c_str(), 0644);
  auto open = readSecretsFile(path);
  CHECK(open.status().code() == StatusCode::kPermissionDenied);
  CHECK(open.status().message().find("has mode 0644; it holds CA keys") != std::string::npos);
  chmod(path.c_str(), 0600);

  const std::string text = keel::testing::readFile(path);
  REQUIRE(writePrivateFile(path, text.substr(0, text.size() / 2), Overwrite::kYes).isOk());
  auto truncated = readSecretsFile(path);
  CHECK(startsWith(truncated.status().message(), path.string() + ": invalid JSON: parse error at line"));

  auto withField = mutate([](json& d) { d["certs"]["etcd"]["key"] = "x"; });
  REQUIRE(writePrivateFile(path, withField, Overwrite::kYes).isOk());
  CHECK(startsWith(readSecretsFile(path).status().message(), path.string() + ": certs.etcd.key: "));
}

TEST_CASE("JSON with a duplicated key is refused") {
  CHECK(errorOf(R"({"version": 1, "version": 1})").find("appears twice") != std::string::npos);
  CHECK(errorOf("[]").find("expected an object") != std::string::npos);
}
