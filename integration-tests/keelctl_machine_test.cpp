// keelctl's machine commands as a person runs them, against a real local node.
#include <sys/utsname.h>
#include <signal.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "node_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;
using keel::testing::RunOptions;

ProcessResult keelctl(const Node& node, std::vector<std::string> args, RunOptions options = {}) {
  std::vector<std::string> argv = {KEELCTL_PATH, "--root", node.root().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return keel::testing::run(argv, options);
}

TEST_CASE("keelctl version and services print tables with a NODE column", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  const auto version = keelctl(node, {"version"});
  INFO(version.err);
  REQUIRE(version.exitCode == 0);
  CHECK_THAT(version.out, ContainsSubstring("NODE"));
  CHECK_THAT(version.out, ContainsSubstring("127.0.1.1"));
  // The kernel it runs on: the release in the table, release and build in JSON.
  utsname u{};
  REQUIRE(uname(&u) == 0);
  CHECK_THAT(version.out, ContainsSubstring("KERNEL") && ContainsSubstring(u.release));
  const auto versionJson = keelctl(node, {"version", "-o", "json"});
  REQUIRE(versionJson.exitCode == 0);
  CHECK(nlohmann::json::parse(versionJson.out)["messages"][0]["kernel"] ==
        std::string(u.release) + " " + u.version);
  const auto services = keelctl(node, {"services"});
  REQUIRE(services.exitCode == 0);
  CHECK_THAT(services.out, ContainsSubstring("ticker"));
  CHECK_THAT(services.out, ContainsSubstring("running"));
  const auto status = keelctl(node, {"service", "sleeper"});
  REQUIRE(status.exitCode == 0);
  CHECK_THAT(status.out, ContainsSubstring("EVENTS"));
}

TEST_CASE("keelctl prints JSON and YAML for scripts", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  const auto json = keelctl(node, {"services", "-o", "json"});
  REQUIRE(json.exitCode == 0);
  const auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["messages"][0]["metadata"]["node"] == "127.0.1.1");
  CHECK(parsed["messages"][0]["services"].size() == 2);
  const auto yaml = keelctl(node, {"memory", "-o", "yaml"});
  REQUIRE(yaml.exitCode == 0);
  const auto doc = YAML::Load(yaml.out);
  CHECK(doc["messages"][0]["meminfo"]["total_kb"].as<uint64_t>() > 0);
  const auto bad = keelctl(node, {"version", "-o", "xml"});
  CHECK(bad.exitCode != 0);
  CHECK_THAT(bad.err, ContainsSubstring("expected table, json or yaml"));
}

TEST_CASE("keelctl logs --follow stops cleanly on Ctrl-C", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("ticker", "running"));
  TempDir out;
  keel::testing::ChildProcess follow(
      {KEELCTL_PATH, "--root", node.root().string(), "logs", "ticker", "--tail", "1", "-f"}, out / "follow.log");
  REQUIRE(eventually([&] {
    const auto text = follow.log();
    size_t ticks = 0;
    for (size_t p = text.find("tick"); p != std::string::npos; p = text.find("tick", p + 1)) ++ticks;
    return ticks >= 3;
  }, 15s));
  follow.signal(SIGINT);
  const auto status = follow.wait(10s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("destructive commands ask first, and only --yes skips the question", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  RunOptions no;
  no.stdinData = "n\n";
  const auto refused = keelctl(node, {"reset"}, no);
  CHECK(refused.exitCode != 0);
  CHECK_THAT(refused.err, ContainsSubstring("Continue? [y/N]"));
  CHECK_THAT(refused.err, ContainsSubstring("nothing was done"));
  CHECK(node.process().running());
  const auto shutdown = keelctl(node, {"shutdown", "--yes"});
  REQUIRE(shutdown.exitCode == 0);
  CHECK_THAT(shutdown.out, ContainsSubstring("shutdown requested"));
  const auto status = node.process().wait(20s);
  REQUIRE(status.has_value());
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("keelctl errors say what to do: no node, a denied role, an unknown service", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  TempDir empty;
  const auto down = keel::testing::run({KEELCTL_PATH, "--root", empty.path().string(), "version"});
  CHECK(down.exitCode != 0);
  CHECK_THAT(down.err, ContainsSubstring("is the node running?"));
  const auto noTarget = keel::testing::run({KEELCTL_PATH, "version"});
  CHECK(noTarget.exitCode != 0);
  CHECK_THAT(noTarget.err, ContainsSubstring("--root"));
  const auto denied = keelctl(node, {"--local-roles", "os:reader", "read", "/var/log/keel/machined.log"});
  CHECK(denied.exitCode != 0);
  CHECK_THAT(denied.err, ContainsSubstring("requires one of the roles os:admin"));
  const auto unknown = keelctl(node, {"service", "nope", "restart"});
  CHECK(unknown.exitCode != 0);
  CHECK_THAT(unknown.err, ContainsSubstring("nope"));
}

TEST_CASE("keelctl apply-config in try mode, then confirm-config, keeps the change", "[keelctl-machine]") {
  TempDir gen;
  auto config = makeConfig(gen);
  Node node(config);
  config["machine"]["network"]["hostname"] = "tried";
  writeFile(gen / "next.json", config.dump(2));
  const auto applied = keelctl(node, {"apply-config", (gen / "next.json").string(), "--mode", "try", "--timeout", "1m"});
  INFO(applied.err);
  REQUIRE(applied.exitCode == 0);
  CHECK_THAT(applied.out, ContainsSubstring("try"));
  REQUIRE(keelctl(node, {"confirm-config"}).exitCode == 0);
  const auto shown = keelctl(node, {"get-config"});
  REQUIRE(shown.exitCode == 0);
  CHECK(nlohmann::json::parse(shown.out)["machine"]["network"]["hostname"] == "tried");
  CHECK(shown.out.find("PRIVATE KEY") == std::string::npos);
}

TEST_CASE("keelctl ls, read and usage stay inside the allowed roots", "[keelctl-machine]") {
  TempDir gen;
  Node node(makeConfig(gen));
  writeFile(node.root() / "srv/data/hello.txt", "hello from the node\n");
  const auto ls = keelctl(node, {"ls", "/srv/data"});
  REQUIRE(ls.exitCode == 0);
  CHECK_THAT(ls.out, ContainsSubstring("/srv/data/hello.txt"));
  const auto read = keelctl(node, {"read", "/srv/data/hello.txt"});
  REQUIRE(read.exitCode == 0);
  CHECK(read.out == "hello from the node\n");
  const auto escape = keelctl(node, {"read", "/etc/keel/config.json"});
  CHECK(escape.exitCode != 0);
  CHECK(escape.out.empty());
  const auto usage = keelctl(node, {"usage", "/srv/data"});
  REQUIRE(usage.exitCode == 0);
  CHECK_THAT(usage.out, ContainsSubstring("/srv/data"));
}

}  // namespace

TEST_CASE("bash completion offers the node's services after logs and service", "[keelctl-machine][completion]") {
  TempDir gen;
  Node node(makeConfig(gen));
  REQUIRE(node.waitForState("sleeper", "running"));
  const auto script = keel::testing::run({KEELCTL_PATH, "completion", "bash"});
  REQUIRE(script.exitCode == 0);
  keel::testing::writeFile(gen / "keelctl.bash", script.out);
  const auto complete = [&](const std::string& line) {
    const std::string program = "source '" + (gen / "keelctl.bash").string() +
                                "'; read -ra COMP_WORDS <<< \"$LINE\"; [[ $LINE == *' ' ]] && COMP_WORDS+=(''); "
                                "COMP_WORDS[0]=\"$KEELCTL\"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _keelctl; "
                                "echo \"${COMPREPLY[*]}\"";
    RunOptions options;
    options.extraEnv = {{"LINE", line}, {"KEELCTL", KEELCTL_PATH}};
    const auto r = keel::testing::run({"bash", "-c", program}, options);
    INFO(line << " -> " << r.out << r.err);
    REQUIRE(r.exitCode == 0);
    return r.out;
  };
  const std::string root = "keelctl --root " + node.root().string();
  const auto logs = complete(root + " logs ");
  CHECK_THAT(logs, ContainsSubstring("sleeper"));
  CHECK_THAT(logs, ContainsSubstring("ticker"));
  CHECK_THAT(logs, ContainsSubstring("machined"));
  CHECK_THAT(complete(root + " service sl"), ContainsSubstring("sleeper"));
  // After the service comes its action.
  const auto action = complete(root + " service sleeper ");
  CHECK_THAT(action, ContainsSubstring("restart"));
  CHECK_THAT(action, !ContainsSubstring("ticker"));
}
