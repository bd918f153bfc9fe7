// keelctl's description of itself, tested from outside: the CLI reference in the
// repository is what the binary writes, the bash completion script completes every
// command of the tree and the words keelctl knows (nodes), and the expiry warning reaches
// stderr of any command.
#include <fstream>
#include <sstream>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace {

using Catch::Matchers::ContainsSubstring;
using keel::testing::ProcessResult;
using keel::testing::TempDir;

ProcessResult keelctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), KEELCTL_PATH);
  env.emplace("KEELCONFIG", "");
  return keel::testing::run(args, {.workingDirectory = std::nullopt, .extraEnv = env, .stdinData = "", .timeout = std::chrono::seconds(60)});
}

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every "## keelctl …" heading of the reference: the command paths.
std::vector<std::string> commandPaths(const std::string& reference) {
  std::vector<std::string> out;
  std::istringstream lines(reference);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("## keelctl ")) out.push_back(line.substr(11));
  }
  return out;
}

// What the bash completion offers for `line` (completing its last word; a trailing space
// completes a new word).
std::string complete(const std::filesystem::path& script, const std::string& line,
                     const std::map<std::string, std::string>& env = {}) {
  const std::string program = "source '" + script.string() +
                              "'; read -ra COMP_WORDS <<< \"$LINE\"; [[ $LINE == *' ' ]] && COMP_WORDS+=(''); "
                              "COMP_WORDS[0]=\"$KEELCTL\"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _keelctl; "
                              "echo \"${COMPREPLY[*]}\"";
  auto vars = env;
  vars["LINE"] = line;
  vars["KEELCTL"] = KEELCTL_PATH;
  const auto r = keel::testing::run({"bash", "-c", program}, {.workingDirectory = std::nullopt, .extraEnv = vars, .stdinData = "", .timeout = std::chrono::seconds(60)});
  INFO(line << " -> " << r.out << r.err);
  REQUIRE(r.exitCode == 0);
  return r.out;
}

}  // namespace

TEST_CASE("docs/cli.md is what keelctl docs writes", "[keelctl][reference]") {
  const auto r = keelctl({"docs"});
  REQUIRE(r.exitCode == 0);
  const auto committed = readFile(std::filesystem::path(KEEL_SOURCE_DIR) / "docs" / "cli.md");
  INFO("docs/cli.md is out of date; regenerate it with: keelctl docs -o docs/cli.md");
  CHECK(r.out == committed);
  for (const char* command : {"config revoke", "config renew", "completion", "cluster create", "upgrade"}) {
    CHECK_THAT(r.out, ContainsSubstring(std::string("## keelctl ") + command + "\n"));
  }
}

TEST_CASE("bash completion completes every command of the tree and the output formats", "[keelctl][completion]") {
  TempDir dir;
  const auto script = dir / "keelctl.bash";
  const auto made = keelctl({"completion", "bash"});
  REQUIRE(made.exitCode == 0);
  keel::testing::writeFile(script, made.out);

  const auto paths = commandPaths(keelctl({"docs"}).out);
  REQUIRE(paths.size() > 30);
  for (const auto& path : paths) {
    // "config renew" is completed from "keelctl config ren".
    const auto space = path.rfind(' ');
    const std::string parent = space == std::string::npos ? "" : path.substr(0, space + 1);
    const std::string last = space == std::string::npos ? path : path.substr(space + 1);
    const std::string offered = complete(script, "keelctl " + parent + last.substr(0, last.size() - 1));
    INFO(path);
    CHECK_THAT(" " + offered, ContainsSubstring(" " + last));
  }
  CHECK_THAT(complete(script, "keelctl config renew --c"), ContainsSubstring("--crt-ttl"));
  CHECK_THAT(complete(script, "keelctl services -o "), ContainsSubstring("json"));
  CHECK_THAT(complete(script, "keelctl completion "), ContainsSubstring("fish"));
  // Hidden helpers are never offered.
  CHECK_THAT(complete(script, "keelctl _"), !ContainsSubstring("__"));

  CHECK(keelctl({"completion", "tcsh"}).exitCode != 0);
  const auto fish = keelctl({"completion", "fish"});
  REQUIRE(fish.exitCode == 0);
  for (const auto& path : paths) CHECK_THAT(fish.out, ContainsSubstring(" -a " + path.substr(path.rfind(' ') + 1) + " "));
  const auto zsh = keelctl({"completion", "zsh"});
  REQUIRE(zsh.exitCode == 0);
  CHECK_THAT(zsh.out, ContainsSubstring("bashcompinit"));
}

TEST_CASE("bash completion offers the context's nodes after -n, from the keelconfig given", "[keelctl][completion]") {
  TempDir dir;
  REQUIRE(keelctl({"gen", "config", "lab", "10.0.0.10", "-o", dir.path().string()}).exitCode == 0);
  const auto kc = dir / "keelconfig";
  REQUIRE(keelctl({"--keelconfig", kc.string(), "config", "node", "10.0.0.21", "worker-7"}).exitCode == 0);
  keel::testing::writeFile(dir / "keelctl.bash", keelctl({"completion", "bash"}).out);
  const auto offered = complete(dir / "keelctl.bash", "keelctl --keelconfig " + kc.string() + " version -n ");
  CHECK_THAT(offered, ContainsSubstring("10.0.0.21"));
  CHECK_THAT(offered, ContainsSubstring("worker-7"));
  CHECK_THAT(offered, ContainsSubstring("10.0.0.10"));
  // Through $KEELCONFIG as well.
  CHECK_THAT(complete(dir / "keelctl.bash", "keelctl -n w", {{"KEELCONFIG", kc.string()}}), ContainsSubstring("worker-7"));
}

TEST_CASE("every command warns on stderr when the client certificate expires within the week", "[keelctl][expiry]") {
  TempDir dir;
  // Issued for 2 minutes (valid from 5 minutes ago, for clock skew): inside the week and past
  // half of its life from the start.
  REQUIRE(keelctl({"gen", "config", "lab", "10.0.0.10", "-o", dir.path().string(), "--crt-ttl", "2m"}).exitCode == 0);
  const auto kc = dir / "keelconfig";
  const auto info = keelctl({"--keelconfig", kc.string(), "config", "info"});
  REQUIRE(info.exitCode == 0);
  CHECK_THAT(info.err, ContainsSubstring("warning: the client certificate of context 'lab' expires at"));
  CHECK_THAT(info.err, ContainsSubstring("keelctl config renew"));
  CHECK_THAT(info.out, ContainsSubstring("RENEW SOON"));
  const auto contexts = keelctl({"--keelconfig", kc.string(), "config", "contexts"});
  CHECK_THAT(contexts.err, ContainsSubstring("warning: the client certificate"));

  REQUIRE(keelctl({"gen", "config", "far", "10.0.0.10", "-o", (dir / "far").string(), "--crt-ttl", "720h"}).exitCode == 0);
  const auto quiet = keelctl({"--keelconfig", (dir / "far" / "keelconfig").string(), "config", "info"});
  CHECK(quiet.exitCode == 0);
  CHECK_THAT(quiet.err, !ContainsSubstring("warning"));
}
