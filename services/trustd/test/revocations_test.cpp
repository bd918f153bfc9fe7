#include "revocations.h"

#include <filesystem>
#include <fstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "authority.h"
#include "keel/pki/serial.h"
#include "keel/security/v1/security.pb.h"
#include "keel/testing/testing.h"

namespace keel::trustd {
namespace {

using Catch::Matchers::ContainsSubstring;

const TimePoint kStart = std::chrono::sys_days{std::chrono::year{2030} / 1 / 2};

pki::CertificateAuthority makeCa(const Clock& clock, const std::string& cn = "keel-os") {
  pki::CaOptions o;
  o.subject.commonName = cn;
  o.subject.organizations = {"keel-os"};
  return pki::createSelfSignedCa(o, clock).value();
}

pki::Certificate clientCert(const pki::CertificateAuthority& ca, const Clock& clock, const std::string& cn,
                            std::chrono::seconds ttl) {
  auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
  pki::CsrOptions o;
  o.subject.commonName = cn;
  auto csr = pki::CertificateRequest::create(key, o).value();
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
  policy.ttl = ttl;
  return pki::issueCertificate(ca, csr, policy, clock).value();
}

RevokedEntry entry(std::string serial, TimePoint notAfter) {
  return {std::move(serial), notAfter, "reader", kStart, "admin"};
}

keel::security::v1::RevocationList parse(const SignedList& s) {
  keel::security::v1::RevocationList list;
  REQUIRE(list.ParseFromString(s.list));
  return list;
}

TEST_CASE("serials are read as an operator types them and written as certificates show them", "[trustd][revoke]") {
  CHECK(pki::normalizeSerial("0A:1B").value() == "0a1b");
  CHECK(pki::normalizeSerial("0x0a1b").value() == "0a1b");
  CHECK(pki::normalizeSerial("a1b").value() == "0a1b");
  CHECK(pki::normalizeSerial("000a1b").value() == "0a1b");
  CHECK(pki::normalizeSerial("7F").value() == "7f");
  CHECK(pki::normalizeSerial("").status().code() == StatusCode::kInvalidArgument);
  CHECK(pki::normalizeSerial("00").status().code() == StatusCode::kInvalidArgument);
  CHECK(pki::normalizeSerial("-0a").status().code() == StatusCode::kInvalidArgument);
  CHECK(pki::normalizeSerial("0a1g").status().code() == StatusCode::kInvalidArgument);
  CHECK(pki::normalizeSerial(std::string(42, 'a')).status().code() == StatusCode::kInvalidArgument);
  CHECK(pki::normalizeSerial(std::string(40, 'a')).ok());
}

TEST_CASE("the list is kept on disk, survives a restart, and its sequence only grows", "[trustd][revoke]") {
  testing::TempDir dir;
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto file = dir.path() / "revocations.json";
  uint64_t first = 0;
  {
    auto r = Revocations::open(file, ca.key, clock).value();
    CHECK(r->entries().empty());
    auto added = r->add(entry("0a1b", kStart + std::chrono::hours(1)));
    REQUIRE(added.ok());
    CHECK_FALSE(added->already);
    first = added->sequence;
    auto again = r->add(entry("0a1b", kStart + std::chrono::hours(1)));
    REQUIRE(again.ok());
    CHECK(again->already);
    CHECK(again->sequence == first);
  }
  const auto mode = std::filesystem::status(file).permissions() & std::filesystem::perms::all;
  CHECK(mode == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  clock.advance(std::chrono::seconds(1));
  auto r = Revocations::open(file, ca.key, clock).value();
  REQUIRE(r->entries().size() == 1);
  CHECK(r->entries().front().serial == "0a1b");
  CHECK(r->entries().front().revokedBy == "admin");
  CHECK(r->sequence() == first);
  auto second = r->add(entry("0c", kStart + std::chrono::hours(2)));
  REQUIRE(second.ok());
  CHECK(second->sequence > first);
}

TEST_CASE("an entry leaves the list once its certificate has expired", "[trustd][revoke]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto r = Revocations::open("", ca.key, clock).value();
  REQUIRE(r->add(entry("01", kStart + std::chrono::minutes(10))).ok());
  REQUIRE(r->add(entry("02", kStart + std::chrono::hours(10))).ok());
  const auto before = r->signedList().value();
  CHECK(parse(before).certificates_size() == 2);
  clock.advance(std::chrono::minutes(11));
  const auto after = r->signedList().value();
  CHECK(after.sequence > before.sequence);
  const auto list = parse(after);
  REQUIRE(list.certificates_size() == 1);
  CHECK(list.certificates(0).serial() == "02");
}

TEST_CASE("the signed list verifies with the CA, and is signed again only after a change", "[trustd][revoke]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto other = makeCa(clock);
  auto r = Revocations::open("", ca.key, clock).value();
  REQUIRE(r->add(entry("0a", kStart + std::chrono::hours(1))).ok());
  const auto a = r->signedList().value();
  CHECK(pki::verifyDocumentSignature(ca.certificate, a.list, a.signature).isOk());
  CHECK_FALSE(pki::verifyDocumentSignature(other.certificate, a.list, a.signature).isOk());
  const auto b = r->signedList().value();
  CHECK(b.signature == a.signature);  // the cached signature: nothing changed
  REQUIRE(r->add(entry("0b", kStart + std::chrono::hours(1))).ok());
  const auto c = r->signedList().value();
  CHECK(c.sequence > a.sequence);
  CHECK(parse(c).certificates_size() == 2);
}

TEST_CASE("a revocation that cannot be written changes nothing", "[trustd][revoke]") {
  testing::TempDir dir;
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto r = Revocations::open(dir.path() / "missing-dir" / "revocations.json", ca.key, clock).value();
  auto added = r->add(entry("0a", kStart + std::chrono::hours(1)));
  CHECK_FALSE(added.ok());
  CHECK(r->entries().empty());
  CHECK(r->sequence() == 0);
}

TEST_CASE("a damaged list file stops trustd with its name instead of serving an empty list", "[trustd][revoke]") {
  testing::TempDir dir;
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto file = dir.path() / "revocations.json";
  {
    std::ofstream(file) << R"({"sequence": 3, "certificates": [{"serial": "0A1B"}]})";
  }
  std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto r = Revocations::open(file, ca.key, clock);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), ContainsSubstring("revocations.json"));
}

struct AuthorityFixture {
  ManualClock clock{kStart};
  pki::CertificateAuthority ca = makeCa(clock);
  std::unique_ptr<Authority> authority = [this] {
    TrustdConfig c;
    c.nodeAddress = "10.0.0.1";
    c.clusterName = "prod";
    c.apiEndpoint = "10.0.0.1:50000";
    c.caCertPem = ca.certificate.toPem();
    c.caKeyPem = ca.key.toPem();
    c.caBundlePem = c.caCertPem;
    c.allowedUids = {1000};
    return Authority::create(c, clock).value();
  }();
};

TEST_CASE("revoking by certificate lists its serial, CN and expiry", "[trustd][revoke]") {
  AuthorityFixture f;
  const auto cert = clientCert(f.ca, f.clock, "alice", std::chrono::hours(5));
  auto added = f.authority->revoke({cert.toPem(), ""}, "admin");
  REQUIRE(added.ok());
  CHECK(added->entry.serial == cert.serialHex());
  CHECK(added->entry.identity == "alice");
  CHECK(added->entry.notAfter == cert.notAfter());
  CHECK(added->entry.revokedBy == "admin");
}

TEST_CASE("revoking by serial lists it for the longest lifetime the CA issues", "[trustd][revoke]") {
  AuthorityFixture f;
  auto added = f.authority->revoke({"", "0A:1B"}, "admin");
  REQUIRE(added.ok());
  CHECK(added->entry.serial == "0a1b");
  CHECK(added->entry.notAfter == kStart + std::chrono::hours(24 * 365));
}

TEST_CASE("what cannot be revoked is refused with a reason, and the list does not change", "[trustd][revoke]") {
  AuthorityFixture f;
  const auto other = makeCa(f.clock, "keel-os");
  const auto foreign = clientCert(other, f.clock, "mallory", std::chrono::hours(5));
  const auto expired = clientCert(f.ca, f.clock, "old", std::chrono::hours(1));
  f.clock.advance(std::chrono::hours(2));

  auto neither = f.authority->revoke({"", ""}, "admin");
  CHECK(neither.status().code() == StatusCode::kInvalidArgument);
  auto both = f.authority->revoke({foreign.toPem(), "0a"}, "admin");
  CHECK(both.status().code() == StatusCode::kInvalidArgument);
  auto notOurs = f.authority->revoke({foreign.toPem(), ""}, "admin");
  CHECK(notOurs.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(notOurs.status().message(), ContainsSubstring("not issued by this cluster's OS CA"));
  auto theCa = f.authority->revoke({f.ca.certificate.toPem(), ""}, "admin");
  CHECK(theCa.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(theCa.status().message(), ContainsSubstring("rotate"));
  auto gone = f.authority->revoke({expired.toPem(), ""}, "admin");
  CHECK(gone.status().code() == StatusCode::kFailedPrecondition);
  auto garbage = f.authority->revoke({"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ""}, "admin");
  CHECK(garbage.status().code() == StatusCode::kInvalidArgument);
  CHECK(f.authority->revocations().entries().empty());
  CHECK(f.authority->revocations().sequence() == 0);
}

}  // namespace
}  // namespace keel::trustd
