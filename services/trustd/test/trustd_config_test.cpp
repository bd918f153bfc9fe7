#include "trustd_config.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>

namespace keel::trustd {
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

TEST_CASE("reads a minimal trustd config with the documented defaults", "[trustd][config]") {
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

TEST_CASE("serves the backend SDK trustd's socket, node and allowed peers, its state directory the config's",
          "[trustd][config]") {
  auto c = parseTrustdConfig(minimal().dump());
  REQUIRE(c.ok());
  const auto b = backendConfigOf(*c, "/var/lib/keel/trustd/config.json");
  CHECK(b.name == "trustd");
  CHECK(b.socket == "/run/keel/trustd.sock");
  CHECK(b.stateDir == "/var/lib/keel/trustd");
  CHECK(b.nodeAddress == "10.0.0.1");
  CHECK(b.allowedPeerUids == std::vector<uid_t>{1000});
}

TEST_CASE("refuses unknown fields, bounds out of range and a config without an allowed peer",
          "[trustd][config]") {
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
}  // namespace keel::trustd
