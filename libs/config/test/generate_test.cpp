#include "keel/config/generate.h"

#include <catch2/catch_test_macros.hpp>

#include "test_util.h"

using namespace keel::config;
using keel::StatusCode;
namespace pki = keel::pki;

TEST_CASE("roles are checked by name and deduplicated") {
  CHECK(*validateRoles({"os:reader", "os:operator", "os:reader"}) == std::vector<std::string>{"os:reader", "os:operator"});
  const auto unknown = validateRoles({"os:reader", "os:root"});
  CHECK(unknown.status().code() == StatusCode::kInvalidArgument);
  CHECK(unknown.status().message() ==
        "unknown role 'os:root': expected one of os:admin, os:operator, os:reader, os:impersonator");
  CHECK_FALSE(validateRoles({}).ok());
}

TEST_CASE("a client certificate carries exactly the roles, clientAuth and the TTL") {
  keel::ManualClock clock(testutil::fixedNow());
  auto ctx = generateClientContext(
      testutil::bundle(), {.commonName = "alice", .roles = {"os:operator", "os:reader"}, .ttl = std::chrono::hours(24)},
      clock);
  REQUIRE(ctx.ok());
  auto crt = pki::Certificate::fromPem(ctx->crt).value();
  CHECK(crt.subject() == pki::DistinguishedName{"alice", {"os:operator", "os:reader"}});
  CHECK(crt.issuer() == testutil::bundle().osCa.certificate.subject());
  CHECK(crt.extendedKeyUsages() == std::vector<pki::ExtendedKeyUsage>{pki::ExtendedKeyUsage::kClientAuth});
  CHECK_FALSE(crt.isCa());
  CHECK(crt.notAfter() == testutil::fixedNow() + std::chrono::hours(24));
  CHECK(crt.notBefore() <= testutil::fixedNow());
  CHECK(crt.matchesKey(pki::PrivateKey::fromPem(ctx->key).value()));
  CHECK(ctx->ca == testutil::bundle().osCa.certificate.toPem());

  CHECK(pki::verifyCertificate(crt, {testutil::bundle().osCa.certificate},
                               {.requiredUsage = pki::ExtendedKeyUsage::kClientAuth, .intermediates = {}}, clock)
            .isOk());
  // Each CA signs only its own domain: the etcd CA does not vouch for an admin client.
  CHECK_FALSE(pki::verifyCertificate(crt, {testutil::bundle().etcdCa.certificate}, {}, clock).isOk());
}

TEST_CASE("client certificates are refused for unknown roles and impossible TTLs") {
  keel::ManualClock clock(testutil::fixedNow());
  const auto& b = testutil::bundle();
  CHECK(generateClientContext(b, {.commonName = "x", .roles = {"admin"}, .ttl = std::chrono::hours(1)}, clock)
            .status()
            .message()
            .find("unknown role 'admin'") != std::string::npos);
  CHECK_FALSE(generateClientContext(b, {.commonName = "x", .roles = {"os:admin"}, .ttl = std::chrono::seconds(0)}, clock).ok());
  const auto outlives =
      generateClientContext(b, {.commonName = "x", .roles = {"os:admin"}, .ttl = std::chrono::hours(24 * 365 * 11)}, clock);
  CHECK(outlives.status().message().find("after the OS CA") != std::string::npos);
}

TEST_CASE("machine config generation refuses bad names and SANs") {
  const auto& b = testutil::bundle();
  const auto ep = *parseEndpoint("10.0.0.10");
  CHECK_FALSE(generateMachineConfigs(b, {.clusterName = "Bad Name", .endpoint = ep, .certSans = {}}).ok());
  CHECK_FALSE(generateMachineConfigs(b, {.clusterName = "ok", .endpoint = ep, .certSans = {"bad san"}}).ok());
}
