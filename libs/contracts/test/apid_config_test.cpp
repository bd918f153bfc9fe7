#include "keel/contracts/apid_config.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace keel::contracts {
namespace {

using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

nlohmann::json minimal() {
  return {{"nodeAddress", "10.0.0.1"},
          {"stateDir", "/var/lib/keel/apid"},
          {"listen", "0.0.0.0:50000"},
          {"backendsDir", "/etc/keel/apid/backends"},
          {"tls", {{"key", "/etc/keel/apid/tls.key"}, {"cert", "/etc/keel/apid/tls.crt"}, {"ca", "/etc/keel/os-ca.crt"}}}};
}

TEST_CASE("a minimal config is read and everything else takes its documented default", "[apid_config]") {
  const auto c = parseApidConfig(minimal().dump());
  REQUIRE(c.ok());
  CHECK(c->nodeAddress == "10.0.0.1");
  CHECK_FALSE(c->hostname.has_value());
  CHECK(c->stateDir == "/var/lib/keel/apid");
  CHECK(c->listen == "0.0.0.0:50000");
  CHECK(c->backendsDir == "/etc/keel/apid/backends");
  CHECK(c->tls.key == "/etc/keel/apid/tls.key");
  CHECK(c->tls.cert == "/etc/keel/apid/tls.crt");
  CHECK(c->acceptedCas == "/etc/keel/os-ca.crt");
  CHECK_FALSE(c->impersonator.has_value());
  CHECK(c->peerPort == 50000);  // the listen port
  CHECK(c->forwardTimeout == 30s);
  CHECK(c->certRefresh == 2s);

  const Limits limits;
  CHECK(c->limits.maxMessageBytes == 16 * 1024 * 1024);
  CHECK(c->limits.maxConcurrentStreams == 100);
  CHECK(c->limits.handshakeTimeout == 10s);
  CHECK(c->limits.idleTimeout == 300s);
  CHECK(c->limits.minPingInterval == limits.minPingInterval);
  CHECK(c->limits.keepaliveTime == limits.keepaliveTime);
  CHECK(c->limits.keepaliveTimeout == limits.keepaliveTimeout);
  CHECK(c->audit.maxFileBytes == 10u * 1024 * 1024);
  CHECK(c->audit.maxFiles == 5u);
}

TEST_CASE("the peer port defaults to the port apid listens on", "[apid_config]") {
  auto doc = minimal();
  doc["listen"] = "[::]:51234";
  const auto c = parseApidConfig(doc.dump());
  REQUIRE(c.ok());
  CHECK(c->peerPort == 51234);
  doc["peerPort"] = 50000;
  CHECK(parseApidConfig(doc.dump())->peerPort == 50000);
}

TEST_CASE("every optional field is read when given", "[apid_config]") {
  auto doc = minimal();
  doc["name"] = "apid";
  doc["socket"] = "/run/keel/apid.sock";
  doc["machinedSocket"] = "/run/keel/machined.sock";
  doc["hostname"] = "node-a";
  doc["impersonator"] = {{"key", "/etc/keel/apid/imp.key"}, {"cert", "/etc/keel/apid/imp.crt"}};
  doc["forwardTimeoutMs"] = 1500;
  doc["certRefreshSeconds"] = 60;
  doc["limits"] = {{"maxMessageBytes", 1024},      {"maxConcurrentStreams", 7}, {"handshakeTimeoutMs", 11},
                   {"idleTimeoutMs", 12},          {"minPingIntervalMs", 13},   {"keepaliveTimeMs", 14},
                   {"keepaliveTimeoutMs", 15}};
  doc["audit"] = {{"maxFileBytes", 4096}, {"maxFiles", 1}};
  const auto c = parseApidConfig(doc.dump());
  REQUIRE(c.ok());
  CHECK(c->hostname == "node-a");
  REQUIRE(c->impersonator.has_value());
  CHECK(c->impersonator->key == "/etc/keel/apid/imp.key");
  CHECK(c->impersonator->cert == "/etc/keel/apid/imp.crt");
  CHECK(c->forwardTimeout == 1500ms);
  CHECK(c->certRefresh == 60s);
  CHECK(c->limits.maxMessageBytes == 1024);
  CHECK(c->limits.maxConcurrentStreams == 7);
  CHECK(c->limits.handshakeTimeout == 11ms);
  CHECK(c->limits.idleTimeout == 12ms);
  CHECK(c->limits.minPingInterval == 13ms);
  CHECK(c->limits.keepaliveTime == 14ms);
  CHECK(c->limits.keepaliveTimeout == 15ms);
  CHECK(c->audit.maxFileBytes == 4096u);
  CHECK(c->audit.maxFiles == 1u);
}

TEST_CASE("a bad field is refused and named in the error", "[apid_config]") {
  struct Case {
    const char* what;
    nlohmann::json patch;  // merged into the minimal config; null removes a key
    const char* field;
  };
  const std::vector<Case> cases = {
      {"unknown field", {{"listenAddress", "0.0.0.0:1"}}, "listenAddress"},
      {"unknown field in tls", {{"tls", {{"keyFile", "/k"}}}}, "tls.keyFile"},
      {"unknown field in limits", {{"limits", {{"maxStreams", 1}}}}, "limits.maxStreams"},
      {"unknown field in audit", {{"audit", {{"maxAge", 1}}}}, "audit.maxAge"},
      {"missing nodeAddress", {{"nodeAddress", nullptr}}, "nodeAddress"},
      {"nodeAddress with a port", {{"nodeAddress", "10.0.0.1:50000"}}, "nodeAddress"},
      {"relative stateDir", {{"stateDir", "var/lib/keel"}}, "stateDir"},
      {"empty backendsDir", {{"backendsDir", ""}}, "backendsDir"},
      {"relative tls key", {{"tls", {{"key", "tls.key"}}}}, "tls.key"},
      {"relative tls cert", {{"tls", {{"cert", "./tls.crt"}}}}, "tls.cert"},
      {"relative tls ca", {{"tls", {{"ca", "ca.crt"}}}}, "tls.ca"},
      {"missing tls", {{"tls", nullptr}}, "tls"},
      {"listen without port", {{"listen", "0.0.0.0"}}, "listen"},
      {"listen with empty port", {{"listen", "0.0.0.0:"}}, "listen"},
      {"listen port out of range", {{"listen", "0.0.0.0:65536"}}, "listen"},
      {"listen port not a number", {{"listen", "0.0.0.0:http"}}, "listen"},
      {"listen port negative", {{"listen", "0.0.0.0:-1"}}, "listen"},
      {"listen port huge", {{"listen", "0.0.0.0:99999999999999999999"}}, "listen"},
      {"peerPort zero", {{"peerPort", 0}}, "peerPort"},
      {"peerPort too large", {{"peerPort", 65536}}, "peerPort"},
      {"forwardTimeoutMs zero", {{"forwardTimeoutMs", 0}}, "forwardTimeoutMs"},
      {"forwardTimeoutMs over a day", {{"forwardTimeoutMs", 24LL * 3600 * 1000 + 1}}, "forwardTimeoutMs"},
      {"certRefreshSeconds over an hour", {{"certRefreshSeconds", 3601}}, "certRefreshSeconds"},
      {"maxMessageBytes too small", {{"limits", {{"maxMessageBytes", 1023}}}}, "limits.maxMessageBytes"},
      {"maxMessageBytes too large", {{"limits", {{"maxMessageBytes", 256LL * 1024 * 1024 + 1}}}},
       "limits.maxMessageBytes"},
      {"maxConcurrentStreams zero", {{"limits", {{"maxConcurrentStreams", 0}}}}, "limits.maxConcurrentStreams"},
      {"maxConcurrentStreams too many", {{"limits", {{"maxConcurrentStreams", 10001}}}},
       "limits.maxConcurrentStreams"},
      {"idleTimeoutMs negative", {{"limits", {{"idleTimeoutMs", -5}}}}, "limits.idleTimeoutMs"},
      {"keepaliveTimeMs as a string", {{"limits", {{"keepaliveTimeMs", "60000"}}}}, "limits.keepaliveTimeMs"},
      {"audit maxFileBytes below 4096", {{"audit", {{"maxFileBytes", 4095}}}}, "audit.maxFileBytes"},
      {"audit maxFiles zero", {{"audit", {{"maxFiles", 0}}}}, "audit.maxFiles"},
      {"audit maxFiles over 100", {{"audit", {{"maxFiles", 101}}}}, "audit.maxFiles"},
      {"impersonator without cert", {{"impersonator", {{"key", "/k"}}}}, "impersonator.cert"},
      {"impersonator with relative key", {{"impersonator", {{"key", "k"}, {"cert", "/c"}}}}, "impersonator.key"},
      {"impersonator with an extra field", {{"impersonator", {{"key", "/k"}, {"cert", "/c"}, {"ca", "/a"}}}},
       "impersonator.ca"},
      {"impersonator not an object", {{"impersonator", "/k"}}, "impersonator"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    nlohmann::json doc = minimal();
    doc.merge_patch(c.patch);
    const auto parsed = parseApidConfig(doc.dump());
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(parsed.status().message(), ContainsSubstring(c.field));
  }
}

TEST_CASE("a config that is not a JSON object is refused", "[apid_config]") {
  CHECK_FALSE(parseApidConfig("").ok());
  CHECK_FALSE(parseApidConfig("null").ok());
  CHECK_FALSE(parseApidConfig("[1]").ok());
  CHECK_FALSE(parseApidConfig(R"({"listen": "a:1", "listen": "b:2"})").ok());
}

TEST_CASE("the listen port is the digits after the last colon", "[apid_config]") {
  CHECK(listenPort("0.0.0.0:50000").value() == 50000);
  CHECK(listenPort("[::1]:1").value() == 1);
  CHECK(listenPort("host:65535").value() == 65535);
  CHECK(listenPort(":0").value() == 0);
  CHECK_FALSE(listenPort("host").ok());
  CHECK_FALSE(listenPort("host:").ok());
  CHECK_FALSE(listenPort("host:65536").ok());
  CHECK_FALSE(listenPort("host:+1").ok());
  CHECK_FALSE(listenPort("host:1 ").ok());
}

}  // namespace
}  // namespace keel::contracts

namespace keel::contracts {
namespace {

// A config with every field away from its default, as a control plane's machined writes it.
ApidConfig everyField() {
  ApidConfig c;
  c.name = "apid";
  c.socket = "/run/keel/apid.sock";
  c.machinedSocket = "/run/keel/machined.sock";
  c.nodeAddress = "10.5.0.2";
  c.hostname = "cp-1";
  c.stateDir = "/var/lib/keel/apid";
  c.listen = "10.5.0.2:50000";
  c.backendsDir = "/run/keel/backends.d";
  c.tls = {.key = "/var/lib/keel/apid/server.key", .cert = "/var/lib/keel/apid/server.crt"};
  c.acceptedCas = "/var/lib/keel/apid/ca.crt";
  c.impersonator = KeyPairFiles{.key = "/var/lib/keel/apid/impersonator.key",
                                .cert = "/var/lib/keel/apid/impersonator.crt"};
  c.identity = IdentityConfig{.trustdSocket = "/run/keel/trustd/trustd.sock",
                              .joinEndpoints = {},
                              .joinToken = "",
                              .sans = {"10.5.0.2", "cp-1", "127.0.0.1"}};
  c.join = JoinListenerConfig{.listen = "10.5.0.2:50001", .trustdSocket = "/run/keel/trustd/trustd.sock"};
  c.peerPort = 50010;
  c.forwardTimeout = std::chrono::milliseconds(12'345);
  c.certRefresh = std::chrono::seconds(7);
  c.revocationRefresh = std::chrono::milliseconds(2'500);
  c.threads = 3;
  c.limits.maxMessageBytes = 4 * 1024 * 1024;
  c.limits.maxConcurrentStreams = 50;
  c.limits.maxTargets = 17;
  c.limits.handshakeTimeout = std::chrono::milliseconds(3'000);
  c.limits.idleTimeout = std::chrono::milliseconds(60'000);
  c.limits.minPingInterval = std::chrono::milliseconds(5'000);
  c.limits.keepaliveTime = std::chrono::milliseconds(30'000);
  c.limits.keepaliveTimeout = std::chrono::milliseconds(9'000);
  c.limits.maxPeers = 12;
  c.limits.peerIdle = std::chrono::milliseconds(90'000);
  c.audit.maxFileBytes = 1 << 20;
  c.audit.maxFiles = 3;
  return c;
}

TEST_CASE("what the writer writes, the reader reads back as the same config", "[apid_config]") {
  const ApidConfig controlPlane = everyField();
  const auto back = parseApidConfig(serializeApidConfig(controlPlane));
  REQUIRE(back.ok());
  CHECK(*back == controlPlane);

  ApidConfig worker = everyField();
  worker.hostname.reset();
  worker.impersonator.reset();
  worker.join.reset();
  worker.identity = IdentityConfig{.trustdSocket = {},
                                   .joinEndpoints = {"10.5.0.1:50001", "[fd00::1]:50001"},
                                   .joinToken = "abc.def",
                                   .sans = {"10.5.0.3"}};
  const auto workerBack = parseApidConfig(serializeApidConfig(worker));
  REQUIRE(workerBack.ok());
  CHECK(*workerBack == worker);
}

TEST_CASE("a config read from a hand-written file is written back to the same config", "[apid_config]") {
  const auto read = parseApidConfig(minimal().dump());
  REQUIRE(read.ok());
  const auto again = parseApidConfig(serializeApidConfig(*read));
  REQUIRE(again.ok());
  CHECK(*again == *read);
}

}  // namespace
}  // namespace keel::contracts
