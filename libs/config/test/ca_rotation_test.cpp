#include "keel/config/ca_rotation.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/config/generate.h"
#include "test_util.h"

using namespace keel::config;
using Catch::Matchers::ContainsSubstring;
using keel::StatusCode;

namespace {

const MachineConfigs& configs() {
  static const MachineConfigs c = generateMachineConfigs(
                                      testutil::bundle(),
                                      {.clusterName = "prod", .endpoint = *parseEndpoint("10.0.0.10"), .certSans = {}})
                                      .value();
  return c;
}

const keel::pki::CertificateAuthority& nextCa(CaKind kind) {
  static std::map<CaKind, keel::pki::CertificateAuthority> made;
  if (!made.contains(kind)) {
    keel::ManualClock clock(testutil::fixedNow() + std::chrono::hours(1));
    made.emplace(kind, generateRotationCa(kind, clock).value());
  }
  return made.at(kind);
}

std::string fingerprint(const std::string& pem) { return caFingerprint(pem).value(); }

CaChange acceptCa(std::string pem) { return CaChange{.accept = std::move(pem), .issueCrt = {}, .issueKey = {}, .drop = {}}; }
CaChange issueCa(std::string crt, std::string key = {}) {
  return CaChange{.accept = {}, .issueCrt = std::move(crt), .issueKey = std::move(key), .drop = {}};
}
CaChange dropCa(std::string fp) { return CaChange{.accept = {}, .issueCrt = {}, .issueKey = {}, .drop = std::move(fp)}; }

}  // namespace

TEST_CASE("a rotation on a control plane: accept, issue, drop, each one again changes nothing") {
  const auto& cp = configs().controlPlane;
  const auto& next = nextCa(CaKind::kOs);
  const std::string newCrt = next.certificate.toPem();
  const std::string newKey = next.key.toPem();

  auto accepted = changeCertificateAuthorities(cp, CaKind::kOs, acceptCa(newCrt));
  REQUIRE(accepted.ok());
  CHECK(accepted->ca.crt == cp.ca.crt);
  CHECK(accepted->ca.accepted == std::vector<std::string>{newCrt});
  CHECK(changeCertificateAuthorities(*accepted, CaKind::kOs, acceptCa(newCrt)).value() == *accepted);

  auto issuing = changeCertificateAuthorities(*accepted, CaKind::kOs, issueCa(newCrt, newKey));
  REQUIRE(issuing.ok());
  CHECK(issuing->ca.crt == newCrt);
  CHECK(issuing->ca.key == newKey);
  CHECK(issuing->ca.accepted == std::vector<std::string>{cp.ca.crt});  // the old one stays accepted
  CHECK(changeCertificateAuthorities(*issuing, CaKind::kOs, issueCa(newCrt, newKey)).value() ==
        *issuing);
  CHECK(caBundlePem(issuing->ca).find(newCrt) == 0);  // the issuing CA leads the bundle

  // The config round-trips with the accepted CA.
  CHECK(parseMachineConfig(serializeMachineConfig(*issuing)).value() == *issuing);

  auto dropped = changeCertificateAuthorities(*issuing, CaKind::kOs, dropCa(fingerprint(cp.ca.crt).substr(0, 16)));
  REQUIRE(dropped.ok());
  CHECK(dropped->ca.accepted.empty());
  CHECK(dropped->ca.crt == newCrt);
  CHECK(changeCertificateAuthorities(*dropped, CaKind::kOs, dropCa(fingerprint(cp.ca.crt))).value() == *dropped);
}

TEST_CASE("a worker accepts and trusts the new CA but never takes a key") {
  const auto& worker = configs().worker;
  const auto& next = nextCa(CaKind::kOs);
  const std::string newCrt = next.certificate.toPem();
  auto accepted = changeCertificateAuthorities(worker, CaKind::kOs, acceptCa(newCrt)).value();
  auto withKey = changeCertificateAuthorities(accepted, CaKind::kOs, issueCa(newCrt, next.key.toPem()));
  REQUIRE_FALSE(withKey.ok());
  CHECK_THAT(withKey.status().message(), ContainsSubstring("never holds a CA key"));
  auto issuing = changeCertificateAuthorities(accepted, CaKind::kOs, issueCa(newCrt));
  REQUIRE(issuing.ok());
  CHECK(issuing->ca.crt == newCrt);
  CHECK(issuing->ca.key.empty());
  // A worker holds no etcd CA: nothing to change, nothing refused.
  CHECK(changeCertificateAuthorities(worker, CaKind::kEtcd, acceptCa(nextCa(CaKind::kEtcd).certificate.toPem()))
            .value() == worker);
}

TEST_CASE("the steps keep their order and bad input changes nothing") {
  const auto& cp = configs().controlPlane;
  const auto& next = nextCa(CaKind::kOs);
  const std::string newCrt = next.certificate.toPem();

  SECTION("issuing with a CA not accepted yet") {
    auto r = changeCertificateAuthorities(cp, CaKind::kOs, issueCa(newCrt, next.key.toPem()));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(r.status().message(), ContainsSubstring("not accepted on this node yet"));
  }
  SECTION("a control plane issuing without the key, or with another CA's key") {
    auto accepted = changeCertificateAuthorities(cp, CaKind::kOs, acceptCa(newCrt)).value();
    CHECK(changeCertificateAuthorities(accepted, CaKind::kOs, issueCa(newCrt)).status().code() ==
          StatusCode::kFailedPrecondition);
    auto wrongKey = changeCertificateAuthorities(
        accepted, CaKind::kOs, issueCa(newCrt, testutil::bundle().osCa.key.toPem()));
    REQUIRE_FALSE(wrongKey.ok());
    CHECK(wrongKey.status().code() == StatusCode::kInvalidArgument);
  }
  SECTION("dropping the issuing CA") {
    auto r = changeCertificateAuthorities(cp, CaKind::kOs, dropCa(fingerprint(cp.ca.crt)));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), ContainsSubstring("never dropped"));
  }
  SECTION("a leaf certificate, junk, or a short fingerprint") {
    auto ctx = generateClientContext(testutil::bundle(), {.commonName = "x", .roles = {"os:reader"}},
                                     keel::ManualClock(testutil::fixedNow()));
    REQUIRE(ctx.ok());
    CHECK(changeCertificateAuthorities(cp, CaKind::kOs, acceptCa(ctx->crt)).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(changeCertificateAuthorities(cp, CaKind::kOs, acceptCa("junk")).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(changeCertificateAuthorities(cp, CaKind::kOs, dropCa("abc")).status().code() ==
          StatusCode::kInvalidArgument);
  }
  SECTION("more accepted CAs than a node takes") {
    MachineConfig c = cp;
    keel::ManualClock clock(testutil::fixedNow());
    for (size_t i = 0; i < kMaxAcceptedCas; ++i) {
      clock.advance(std::chrono::seconds(1));
      c = changeCertificateAuthorities(c, CaKind::kKubernetes,
                                       acceptCa(generateRotationCa(CaKind::kKubernetes, clock)->certificate.toPem()))
              .value();
    }
    clock.advance(std::chrono::seconds(1));
    auto r = changeCertificateAuthorities(
        c, CaKind::kKubernetes, acceptCa(generateRotationCa(CaKind::kKubernetes, clock)->certificate.toPem()));
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("a repeated accepted CA in a machine config is refused by field") {
  MachineConfig c = configs().controlPlane;
  c.ca.accepted = {c.ca.crt};
  auto parsed = parseMachineConfig(serializeMachineConfig(c));
  REQUIRE_FALSE(parsed.ok());
  CHECK_THAT(parsed.status().message(), ContainsSubstring("machine.ca.accepted[0]"));
}

TEST_CASE("a rotation CA is named for its kind and its time, and is a CA") {
  const auto& ca = nextCa(CaKind::kEtcd);
  CHECK(ca.certificate.subject().commonName == "etcd 20260101T010000Z");
  CHECK(ca.certificate.isCa());
  CHECK(parseCaKind("aggregator").value() == CaKind::kAggregator);
  CHECK(parseCaKind("k8s").status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("the secrets bundle carries accepted CAs, and configs made from it accept them") {
  const auto& next = nextCa(CaKind::kKubernetes);
  auto b = changeSecretsCa(testutil::bundle(), CaKind::kKubernetes, acceptCa(next.certificate.toPem()));
  REQUIRE(b.ok());
  auto reread = parseSecrets(serializeSecrets(*b));
  REQUIRE(reread.ok());
  CHECK(reread->acceptedCas.at(CaKind::kKubernetes) == std::vector<std::string>{next.certificate.toPem()});
  auto configsNow =
      generateMachineConfigs(*reread, {.clusterName = "prod", .endpoint = *parseEndpoint("10.0.0.10"), .certSans = {}});
  REQUIRE(configsNow.ok());
  CHECK(configsNow->worker.kubernetesCa.accepted == std::vector<std::string>{next.certificate.toPem()});
  auto issued = changeSecretsCa(*reread, CaKind::kKubernetes,
                                issueCa(next.certificate.toPem(), next.key.toPem()));
  REQUIRE(issued.ok());
  CHECK(issued->kubernetesCa.certificate.toPem() == next.certificate.toPem());
  CHECK(issued->acceptedCas.at(CaKind::kKubernetes) ==
        std::vector<std::string>{testutil::bundle().kubernetesCa.certificate.toPem()});
}
