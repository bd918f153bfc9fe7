// The routing entry machined writes and apid reads: the reader's checks, and the writer's
// output read back.
#include "keel/contracts/route_entry.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace keel::contracts {
namespace {

using Catch::Matchers::ContainsSubstring;

nlohmann::json machinedManifest() {
  return {{"name", "machined"},
          {"socket", "/run/keel/machined.sock"},
          {"services", {"keel.machine.v1.MachineService"}},
          {"allowedUids", {0}},
          {"rules", "builtin"}};
}

TEST_CASE("a routing entry following the documented schema is read field by field", "[route_entry]") {
  const auto m = parseRouteEntry(R"({"name": "my-ext_1.0", "socket": "/run/ext/ext.sock",
      "services": ["acme.ext.v1.Ext", "acme.ext.v1.Other"], "allowedUids": [0, 1000],
      "rules": "/usr/share/ext/ext.pb"})");
  REQUIRE(m.ok());
  CHECK(m->name == "my-ext_1.0");
  CHECK(m->socket == "/run/ext/ext.sock");
  CHECK(m->services == std::vector<std::string>{"acme.ext.v1.Ext", "acme.ext.v1.Other"});
  CHECK(m->allowedUids == std::vector<uid_t>{0, 1000});
  CHECK(m->rules == "/usr/share/ext/ext.pb");
  CHECK(parseRouteEntry(machinedManifest().dump()).ok());
}

TEST_CASE("a routing entry with a bad or unknown field is refused naming the field", "[route_entry]") {
  struct Case {
    const char* what;
    nlohmann::json patch;  // merged into the valid manifest; null removes the key
    const char* field;
  };
  const std::vector<Case> cases = {
      {"unknown field", {{"sockets", "/x"}}, "sockets"},
      {"relative socket", {{"socket", "run/machined.sock"}}, "socket"},
      {"empty socket", {{"socket", ""}}, "socket"},
      {"empty services", {{"services", nlohmann::json::array()}}, "services"},
      {"missing services", {{"services", nullptr}}, "services"},
      {"service with a slash", {{"services", {"keel.machine.v1.MachineService/Version"}}}, "services[0]"},
      {"empty service", {{"services", {""}}}, "services[0]"},
      {"missing allowedUids", {{"allowedUids", nullptr}}, "allowedUids"},
      {"empty allowedUids", {{"allowedUids", nlohmann::json::array()}}, "allowedUids"},
      {"negative uid", {{"allowedUids", {0, -1}}}, "allowedUids[1]"},
      {"uid as string", {{"allowedUids", {"0"}}}, "allowedUids[0]"},
      {"uid too large", {{"allowedUids", {4294967295ULL}}}, "allowedUids[0]"},
      {"fractional uid", {{"allowedUids", {1.5}}}, "allowedUids[0]"},
      {"relative rules", {{"rules", "ext.pb"}}, "rules"},
      {"empty rules", {{"rules", ""}}, "rules"},
      {"Builtin in the wrong case", {{"rules", "Builtin"}}, "rules"},
      {"missing rules", {{"rules", nullptr}}, "rules"},
      {"upper-case name", {{"name", "Machined"}}, "name"},
      {"empty name", {{"name", ""}}, "name"},
      {"name with a slash", {{"name", "../etc"}}, "name"},
      {"name too long", {{"name", std::string(64, 'a')}}, "name"},
      {"missing name", {{"name", nullptr}}, "name"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    nlohmann::json doc = machinedManifest();
    doc.merge_patch(c.patch);
    const auto m = parseRouteEntry(doc.dump());
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(m.status().message(), ContainsSubstring(c.field));
  }
}

TEST_CASE("a routing entry that is not a JSON object is refused", "[route_entry]") {
  CHECK_FALSE(parseRouteEntry("").ok());
  CHECK_FALSE(parseRouteEntry("[]").ok());
  CHECK_FALSE(parseRouteEntry("{").ok());
  CHECK_FALSE(parseRouteEntry(R"({"name": "a", "name": "b"})").ok());
}

TEST_CASE("what the writer writes, the reader reads back as the same entry", "[route_entry]") {
  RouteEntry entry{.name = "acme-ext",
                   .socket = "/run/keel/backends/acme-ext/ext.sock",
                   .services = {"acme.ext.v1.Ext", "acme.ext.v1.Other"},
                   .allowedUids = {0, 4242},
                   .rules = "/usr/libexec/keel/backends/acme-ext.pb",
                   .version = "1.2.3",
                   .servedByApid = false};
  auto back = parseRouteEntry(serializeRouteEntry(entry));
  REQUIRE(back.ok());
  CHECK(*back == entry);
  entry.version.clear();
  entry.rules = "builtin";
  back = parseRouteEntry(serializeRouteEntry(entry));
  REQUIRE(back.ok());
  CHECK(*back == entry);
  CHECK_FALSE(nlohmann::json::parse(serializeRouteEntry(entry)).contains("version"));
}

TEST_CASE("an entry the reader would refuse is not made acceptable by the writer", "[route_entry]") {
  const RouteEntry entry{.name = "../etc",
                         .socket = "run/x.sock",
                         .services = {},
                         .allowedUids = {},
                         .rules = "x.pb",
                         .version = "",
                         .servedByApid = false};
  CHECK_FALSE(parseRouteEntry(serializeRouteEntry(entry)).ok());
}

}  // namespace
}  // namespace keel::contracts
