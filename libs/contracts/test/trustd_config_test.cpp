#include "keel/contracts/trustd_config.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>

namespace keel::contracts {
namespace {

using Catch::Matchers::ContainsSubstring;

nlohmann::json minimal() {
  return {{"socket", "/run/keel/trustd.sock"},
          {"nodeAddress", "10.0.0.1"},
          {"clusterName", "prod"},
          {"apiEndpoint", "10.0.0.1:50000"},
          {"ca", {{"crt", "C"}, {"key", "K"}}},
          {"joinTokens", {"abcdef.0123456789abcdef"}},
          {"allowedUids", {1000}}};
}

TEST_CASE("reads a minimal trustd config with the documented defaults", "[trustd_config]") {
  auto c = parseTrustdConfig(minimal().dump());
  INFO(c.status().toString());
  REQUIRE(c.ok());
  CHECK(c->caBundlePem == "C");
  CHECK(c->nodeCertTtl == std::chrono::hours(24));
  CHECK(c->joinExtraSans.empty());
  CHECK(c->clientCertMaxTtl == std::chrono::hours(24 * 365));
  CHECK(c->allowedUids == std::vector<uid_t>{1000});
  CHECK(c->joinIpv6PrefixBits == 64);
}

TEST_CASE("refuses unknown fields, bounds out of range and a config without an allowed peer",
          "[trustd_config]") {
  auto j = minimal();
  j["join"] = {{"ttlSecond", 60}};
  auto typo = parseTrustdConfig(j.dump());
  REQUIRE_FALSE(typo.ok());
  CHECK_THAT(typo.status().message(), ContainsSubstring("join.ttlSecond"));

  j = minimal();
  j["join"] = {{"ttlSeconds", 5}};
  CHECK_THAT(parseTrustdConfig(j.dump()).status().message(), ContainsSubstring("join.ttlSeconds"));

  j = minimal();
  j["client"] = {{"maxTtlSeconds", 3600}, {"defaultTtlSeconds", 7200}};
  CHECK_THAT(parseTrustdConfig(j.dump()).status().message(), ContainsSubstring("client.defaultTtlSeconds"));

  j = minimal();
  j["allowedUids"] = nlohmann::json::array();
  CHECK_THAT(parseTrustdConfig(j.dump()).status().message(), ContainsSubstring("allowedUids"));
  j["allowedUids"] = {-1};
  CHECK_FALSE(parseTrustdConfig(j.dump()).ok());

  j = minimal();
  j["join"] = {{"ipv6PrefixBits", 16}};
  CHECK_THAT(parseTrustdConfig(j.dump()).status().message(), ContainsSubstring("join.ipv6PrefixBits"));
  j["join"] = {{"ipv6PrefixBits", 56}};
  CHECK(parseTrustdConfig(j.dump()).value().joinIpv6PrefixBits == 56);

  j = minimal();
  j["socket"] = "relative.sock";
  CHECK_THAT(parseTrustdConfig(j.dump()).status().message(), ContainsSubstring("socket"));
}

}  // namespace
}  // namespace keel::contracts

namespace keel::contracts {
namespace {

// A config with every field away from its default, as a control plane's machined writes it.
TrustdConfig everyField() {
  TrustdConfig c;
  c.name = "trustd";
  c.stateDir = "/var/lib/keel/trustd";
  c.machinedSocket = "/run/keel/machined.sock";
  c.socket = "/run/keel-trustd/trustd.sock";
  c.nodeAddress = "10.5.0.2";
  c.hostname = "cp-1";
  c.clusterName = "prod";
  c.apiEndpoint = "10.5.0.2:50000";
  c.caCertPem = "CRT";
  c.caKeyPem = "KEY";
  c.caBundlePem = "CRT\nOLD";
  c.joinTokens = {"abcdef.0123456789abcdef", "zzzzzz.zzzzzzzzzzzzzzzz"};
  c.certSans = {"api.example.test"};
  c.allowedUids = {4242, 4243};
  c.nodeCertTtl = std::chrono::seconds(3600);
  c.joinExtraSans = {"10.5.0.0/16", "node.example.test"};
  c.joinBurst = 20;
  c.joinRatePerMinute = 120;
  c.joinIpv6PrefixBits = 56;
  c.revocationFile = "/var/lib/keel/trustd/revoked.json";
  c.clientCertDefaultTtl = std::chrono::seconds(7 * 24 * 3600);
  c.clientCertMaxTtl = std::chrono::seconds(90 * 24 * 3600);
  return c;
}

TEST_CASE("what the writer writes, the reader reads back as the same trustd config", "[trustd_config]") {
  const TrustdConfig c = everyField();
  const auto back = parseTrustdConfig(serializeTrustdConfig(c));
  REQUIRE(back.ok());
  CHECK(*back == c);

  const auto minimalRead = parseTrustdConfig(minimal().dump());
  REQUIRE(minimalRead.ok());
  const auto again = parseTrustdConfig(serializeTrustdConfig(*minimalRead));
  REQUIRE(again.ok());
  CHECK(*again == *minimalRead);
}

}  // namespace
}  // namespace keel::contracts
