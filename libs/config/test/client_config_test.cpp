#include "keel/config/client_config.h"

#include <catch2/catch_test_macros.hpp>
#include <functional>
#include <nlohmann/json.hpp>

#include "keel/config/generate.h"
#include "keel/testing/testing.h"
#include "test_util.h"

using namespace keel::config;
using keel::StatusCode;
using nlohmann::json;

namespace {

const ClientContext& adminContext() {
  static const ClientContext ctx = [] {
    keel::ManualClock clock(testutil::fixedNow());
    auto c = generateClientContext(testutil::bundle(), {}, clock).value();
    c.endpoints = {"10.0.0.10:50000"};
    c.nodes = {"10.0.0.10"};
    return c;
  }();
  return ctx;
}

ClientConfig oneContext(const std::string& name) { return {.context = name, .contexts = {{name, adminContext()}}}; }

std::string errorOf(const std::function<void(json&)>& change) {
  json doc = json::parse(serializeClientConfig(oneContext("prod")));
  change(doc);
  auto r = parseClientConfig(doc.dump());
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

bool startsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("a client config survives serialization unchanged") {
  const auto config = oneContext("prod");
  const auto text = serializeClientConfig(config);
  const auto doc = json::parse(text);
  CHECK(doc["context"] == "prod");
  CHECK(doc["contexts"]["prod"]["endpoints"] == json::array({"10.0.0.10:50000"}));
  auto parsed = parseClientConfig(text);
  REQUIRE(parsed.ok());
  CHECK(*parsed == config);
}

TEST_CASE("loading a client config names the offending field") {
  CHECK(startsWith(errorOf([](json& d) { d["contexts"]["prod"]["key"] = "x"; }), "contexts.prod.key: "));
  CHECK(startsWith(errorOf([](json& d) { d["contexts"]["prod"]["endpoints"] = {"ftp://x"}; }),
                   "contexts.prod.endpoints[0]: "));
  CHECK(startsWith(errorOf([](json& d) { d["contexts"]["prod"]["nodes"] = {"n:1"}; }), "contexts.prod.nodes[0]: "));
  CHECK(startsWith(errorOf([](json& d) { d["contexts"]["prod"]["node"] = json::array(); }),
                   "contexts.prod.node: unknown field"));
  CHECK(startsWith(errorOf([](json& d) { d["context"] = "staging"; }),
                   "context: expected one of the contexts (prod), found 'staging'"));
  CHECK(startsWith(errorOf([&](json& d) { d["contexts"]["prod"]["key"] = testutil::bundle().osCa.key.toPem(); }),
                   "contexts.prod.key: does not match contexts.prod.crt"));
  CHECK(startsWith(errorOf([](json& d) { d["contexts"]["bad name"] = d["contexts"]["prod"]; }),
                   "contexts.bad name: invalid context name"));
}

TEST_CASE("the config path comes from the flag, then $KEELCONFIG, then HOME") {
  CHECK(*resolveClientConfigPath("/a/flag", {.keelconfig = "/b/env", .home = "/h"}) == "/a/flag");
  CHECK(*resolveClientConfigPath(std::nullopt, {.keelconfig = "/b/env", .home = "/h"}) == "/b/env");
  CHECK(*resolveClientConfigPath(std::nullopt, {.keelconfig = "", .home = "/h"}) == "/h/.keel/config");
  CHECK(resolveClientConfigPath(std::nullopt, {}).status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("use-context switches only to a known context") {
  auto config = oneContext("prod");
  config.contexts.emplace("lab", adminContext());
  REQUIRE(useContext(config, "lab").isOk());
  CHECK(config.context == "lab");
  const auto s = useContext(config, "nope");
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(s.message() == "context 'nope' not found: expected one of: lab, prod");
}

TEST_CASE("endpoints and nodes of the current context are validated and canonical") {
  auto config = oneContext("prod");
  REQUIRE(setEndpoints(config, {"https://CP.example:6000", "fd00::1", "10.0.0.11"}).isOk());
  CHECK(config.contexts["prod"].endpoints ==
        std::vector<std::string>{"cp.example:6000", "[fd00::1]:50000", "10.0.0.11:50000"});
  CHECK_FALSE(setEndpoints(config, {}).isOk());
  CHECK_FALSE(setEndpoints(config, {"http://x"}).isOk());
  REQUIRE(setNodes(config, {"10.0.0.21", "Node-2"}).isOk());
  CHECK(config.contexts["prod"].nodes == std::vector<std::string>{"10.0.0.21", "node-2"});
  REQUIRE(setNodes(config, {}).isOk());
  CHECK(config.contexts["prod"].nodes.empty());
  CHECK_FALSE(setNodes(config, {"10.0.0.21:50000"}).isOk());
  ClientConfig empty;
  CHECK(setNodes(empty, {"x"}).code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("merging renames clashing contexts and reports it") {
  auto into = oneContext("prod");
  into.contexts.emplace("prod-1", adminContext());
  auto from = oneContext("prod");
  from.contexts.emplace("lab", adminContext());
  const auto report = mergeClientConfig(into, from);
  CHECK(report.renamed == std::vector<std::pair<std::string, std::string>>{{"prod", "prod-2"}});
  CHECK(report.currentContext == "prod-2");
  CHECK(into.context == "prod-2");
  CHECK(into.contexts.size() == 4);
  CHECK(into.contexts.count("lab") == 1);
}

TEST_CASE("client config files are written privately, creating the directory") {
  keel::testing::TempDir dir;
  const auto path = dir / ".keel" / "config";
  REQUIRE(writeClientConfigFile(path, oneContext("prod"), Overwrite::kNo).isOk());
  CHECK((std::filesystem::status(dir / ".keel").permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
  auto read = readClientConfigFile(path);
  REQUIRE(read.ok());
  CHECK(*read == oneContext("prod"));
}
