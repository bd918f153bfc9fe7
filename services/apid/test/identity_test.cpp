#include "identity.h"

#include <atomic>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/pki/pki.h"
#include "keel/testing/testing.h"

namespace keel::apid {
namespace {

using Catch::Matchers::ContainsSubstring;
using keel::testing::readFile;
using keel::testing::TempDir;

// Issues from a CA of its own after `failures` refusals; can be told to answer with a
// certificate for another key.
class FakeIssuer final : public CertificateIssuer {
 public:
  FakeIssuer(const Clock& clock, int failures, std::chrono::seconds ttl)
      : clock_(clock), failures_(failures), ttl_(ttl) {
    pki::CaOptions o;
    o.subject.commonName = "keel-os";
    ca_ = std::make_unique<pki::CertificateAuthority>(pki::createSelfSignedCa(o, clock).value());
  }
  Result<IssuedIdentity> issue(const IdentityRequest& request) override {
    ++calls;
    lastRenewal = request.renewal;
    lastCsrPem = request.servingCsrPem;
    if (failures_-- > 0) return unavailable("trustd is not up yet");
    IssuedIdentity out;
    auto csr = pki::CertificateRequest::fromPem(request.servingCsrPem).value();
    if (wrongKey) {
      auto other = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
      csr = pki::CertificateRequest::create(other, {.subject = csr.subject(), .subjectAltNames = {}}).value();
    }
    lastSans = csr.subjectAltNames();
    pki::IssuePolicy p;
    p.allowAnySubjectAltName = true;
    p.ttl = ttl_;
    p.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
    out.servingChainPem = pki::issueCertificate(*ca_, csr, p, clock_).value().toPem();
    if (!request.impersonatorCsrPem.empty()) {
      auto imp = pki::CertificateRequest::fromPem(request.impersonatorCsrPem).value();
      lastImpersonatorCn = imp.subject().commonName;
      p.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
      out.impersonatorPem = pki::issueCertificate(*ca_, imp, p, clock_).value().toPem();
    }
    return out;
  }
  std::string describe() const override { return "a fake issuer"; }

  std::atomic<int> calls{0};
  bool wrongKey = false;
  std::optional<RenewalProof> lastRenewal;
  std::string lastCsrPem;
  pki::SubjectAltNames lastSans;
  std::string lastImpersonatorCn;

 private:
  const Clock& clock_;
  int failures_;
  std::chrono::seconds ttl_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
};

IdentityOptions options(const TempDir& dir, bool impersonator) {
  IdentityOptions o;
  o.nodeAddress = "127.0.1.1";
  o.sans = {"127.0.1.1", "node-a", "127.0.0.1"};
  o.files = {dir / "server.key", dir / "server.crt", impersonator ? dir / "impersonator.key" : "",
             impersonator ? dir / "impersonator.crt" : ""};
  o.firstRetry = std::chrono::milliseconds(1);
  o.maxRetry = std::chrono::milliseconds(4);
  return o;
}

TEST_CASE("apid writes a matching key and certificate for its names, and plans renewal near half-life",
          "[identity]") {
  TempDir dir;
  ManualClock clock(std::chrono::system_clock::now());
  auto issuer = std::make_unique<FakeIssuer>(clock, 0, std::chrono::hours(10));
  auto* fake = issuer.get();
  IdentityManager m(options(dir, true), std::move(issuer), clock, 42);
  REQUIRE(m.obtain().isOk());
  const auto cert = pki::Certificate::bundleFromPem(readFile(dir / "server.crt")).value().front();
  const auto key = pki::PrivateKey::fromPem(readFile(dir / "server.key")).value();
  CHECK(cert.matchesKey(key));
  CHECK(fake->lastSans.ipAddresses == std::vector<std::string>{"127.0.1.1", "127.0.0.1"});
  CHECK(fake->lastSans.dnsNames == std::vector<std::string>{"node-a"});
  CHECK(fake->lastImpersonatorCn == "apid@127.0.1.1");
  const auto imp = pki::Certificate::fromPem(readFile(dir / "impersonator.crt")).value();
  CHECK(imp.matchesKey(pki::PrivateKey::fromPem(readFile(dir / "impersonator.key")).value()));
  const auto renewIn = m.renewalTime() - clock.now();
  CHECK(renewIn >= std::chrono::hours(4));
  CHECK(renewIn <= std::chrono::hours(6));

  // A renewal replaces key and certificate together.
  const auto firstKey = readFile(dir / "server.key");
  REQUIRE(m.renewOnce().isOk());
  CHECK(readFile(dir / "server.key") != firstKey);
}

TEST_CASE("a renewal carries the current certificate and a proof by its key over the new CSR, until it expires",
          "[identity]") {
  TempDir dir;
  ManualClock clock(std::chrono::system_clock::now());
  auto issuer = std::make_unique<FakeIssuer>(clock, 0, std::chrono::hours(10));
  auto* fake = issuer.get();
  IdentityManager m(options(dir, false), std::move(issuer), clock, 42);
  REQUIRE(m.obtain().isOk());
  CHECK_FALSE(fake->lastRenewal.has_value());  // the first certificate: nothing to prove yet
  const auto firstChain = readFile(dir / "server.crt");
  const auto first = pki::Certificate::bundleFromPem(firstChain).value().front();

  REQUIRE(m.renewOnce().isOk());
  REQUIRE(fake->lastRenewal.has_value());
  CHECK(fake->lastRenewal->certificatePem == firstChain);
  const auto csr = pki::CertificateRequest::fromPem(fake->lastCsrPem).value();
  CHECK(pki::verifyPossession(first, csr, fake->lastRenewal->signature).isOk());
  const auto renewed = pki::Certificate::bundleFromPem(readFile(dir / "server.crt")).value().front();
  CHECK(renewed.serialHex() != first.serialHex());

  // An expired certificate proves nothing: the next request goes without a proof.
  clock.advance(std::chrono::hours(11));
  REQUIRE(m.renewOnce().isOk());
  CHECK_FALSE(fake->lastRenewal.has_value());
}

TEST_CASE("apid keeps asking with backoff until a certificate comes, and stops when told", "[identity]") {
  TempDir dir;
  ManualClock clock(std::chrono::system_clock::now());
  SECTION("retries") {
    auto issuer = std::make_unique<FakeIssuer>(clock, 3, std::chrono::hours(1));
    auto* fake = issuer.get();
    IdentityManager m(options(dir, false), std::move(issuer), clock);
    REQUIRE(m.obtain().isOk());
    CHECK(fake->calls == 4);
    CHECK_FALSE(std::filesystem::exists(dir / "impersonator.crt"));
  }
  SECTION("stop ends the wait") {
    auto issuer = std::make_unique<FakeIssuer>(clock, 1'000'000, std::chrono::hours(1));
    IdentityManager m(options(dir, false), std::move(issuer), clock);
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      m.stop();
    });
    const auto st = m.obtain();
    stopper.join();
    CHECK(st.code() == StatusCode::kCancelled);
    CHECK_FALSE(std::filesystem::exists(dir / "server.crt"));
  }
}

TEST_CASE("a certificate that is not for apid's key is refused and nothing is written", "[identity]") {
  TempDir dir;
  ManualClock clock(std::chrono::system_clock::now());
  auto issuer = std::make_unique<FakeIssuer>(clock, 0, std::chrono::hours(1));
  issuer->wrongKey = true;
  IdentityManager m(options(dir, false), std::move(issuer), clock);
  const auto st = m.renewOnce();
  REQUIRE_FALSE(st.isOk());
  CHECK_THAT(st.message(), ContainsSubstring("not for the key"));
  CHECK_FALSE(std::filesystem::exists(dir / "server.key"));
}

TEST_CASE("the background renewal replaces the certificate before it expires", "[identity]") {
  TempDir dir;
  SystemClock clock;
  auto issuer = std::make_unique<FakeIssuer>(clock, 0, std::chrono::seconds(2));
  auto* fake = issuer.get();
  auto o = options(dir, false);
  IdentityManager m(o, std::move(issuer), clock);
  REQUIRE(m.obtain().isOk());
  m.startRenewing();
  // At least one second between renewals: two more within a few seconds.
  CHECK(keel::testing::eventually([&] { return fake->calls >= 3; }, std::chrono::seconds(10)));
  m.stop();
}

}  // namespace
}  // namespace keel::apid
