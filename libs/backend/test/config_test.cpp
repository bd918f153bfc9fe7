#include <catch2/catch_test_macros.hpp>

#include "keel/backend/config.h"

using keel::backend::parseBackendConfig;

TEST_CASE("a backend's config carries its socket, its peers and its own settings") {
  const auto c = parseBackendConfig(R"({"name": "timed", "version": "1.2.3", "socket": "/run/keel/timed.sock",
    "stateDir": "/var/lib/keel/timed", "nodeAddress": "10.0.0.5", "machinedSocket": "/run/keel/machined.sock",
    "allowedPeerUids": [101, 0], "settings": {"x": 1}})");
  REQUIRE(c.ok());
  CHECK(c->name == "timed");
  CHECK(c->version == "1.2.3");
  CHECK(c->socket == "/run/keel/timed.sock");
  CHECK(c->allowedPeerUids == std::vector<uid_t>{101, 0});
  CHECK(c->settings["x"] == 1);
}

TEST_CASE("a backend's config is read strictly, naming the field at fault") {
  const std::string base = R"("name": "timed", "socket": "/s", "stateDir": "/d")";
  struct Case {
    std::string text;
    std::string field;
  };
  for (const auto& c : std::vector<Case>{
           {"{" + base + "}", "allowedPeerUids"},
           {"{" + base + R"(, "allowedPeerUids": []})", "allowedPeerUids"},
           {"{" + base + R"(, "allowedPeerUids": [-1]})", "allowedPeerUids[0]"},
           {"{" + base + R"(, "allowedPeerUids": ["0"]})", "allowedPeerUids[0]"},
           {"{" + base + R"(, "allowedPeerUids": [0], "sockett": "/x"})", "sockett"},
           {"{" + base + R"(, "allowedPeerUids": [0], "settings": []})", "settings"},
           {R"({"name": "timed", "socket": "relative.sock", "stateDir": "/d", "allowedPeerUids": [0]})", "socket"},
           {R"({"socket": "/s", "stateDir": "/d", "allowedPeerUids": [0]})", "name"},
       }) {
    INFO(c.text);
    const auto parsed = parseBackendConfig(c.text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == keel::StatusCode::kInvalidArgument);
    CHECK(parsed.status().message().find(c.field) != std::string::npos);
  }
}
