#include <sstream>

#include <catch2/catch_test_macros.hpp>

#include "config_commands.h"
#include "gen_commands.h"
#include "keel/config/client_config.h"
#include "keel/testing/testing.h"
#include "table.h"

using namespace keel::keelctl;
using keel::StatusCode;
using keel::testing::TempDir;

namespace {

// 2026-01-01T00:00:00Z.
const keel::TimePoint kNow{std::chrono::seconds(1767225600)};

struct Fixture {
  TempDir dir;
  keel::ManualClock clock{kNow};
  keel::config::SystemRandom random;
  std::ostringstream out;
  CommandEnv env{.clock = clock, .random = random, .env = {.keelconfig = std::nullopt, .home = std::nullopt},
                 .keelconfigFlag = std::nullopt, .out = out};

  Fixture() { env.env.home = dir.path().string(); }
};

GenConfigOptions genOptions(const Fixture& f) {
  GenConfigOptions options;
  options.clusterName = "prod";
  options.endpoint = "10.0.0.10";
  options.outputDir = f.dir.path();
  return options;
}

}  // namespace

TEST_CASE("tables pad columns and drop trailing blanks") {
  std::ostringstream out;
  printTable(out, {"A", "LONG HEADER", "C"}, {{"x", "y", ""}, {"wide cell", "", "z"}});
  CHECK(out.str() == "A           LONG HEADER   C\n"
                     "x           y\n"
                     "wide cell                 z\n");
}

TEST_CASE("gen config writes three files and refuses to overwrite them") {
  Fixture f;
  GenConfigOptions options = genOptions(f);
  REQUIRE(genConfig(options, f.env).isOk());
  for (const char* name : {"controlplane.json", "worker.json", "keelconfig"}) {
    CHECK(std::filesystem::exists(f.dir / name));
    CHECK(f.out.str().find(name) != std::string::npos);
  }
  const auto again = genConfig(options, f.env);
  CHECK(again.code() == StatusCode::kAlreadyExists);
  CHECK(again.message().find("--force") != std::string::npos);
  options.force = true;
  CHECK(genConfig(options, f.env).isOk());
}

TEST_CASE("config commands edit the context the lookup order finds") {
  Fixture f;
  REQUIRE(genConfig(genOptions(f), f.env).isOk());
  f.env.env.keelconfig = (f.dir / "keelconfig").string();
  REQUIRE(configEndpoint({"10.0.0.11", "cp.example:6000"}, f.env).isOk());
  REQUIRE(configNode({"10.0.0.21"}, f.env).isOk());
  f.out.str("");
  REQUIRE(configInfo(f.env).isOk());
  const auto info = f.out.str();
  CHECK(info.find("Current context:     prod") != std::string::npos);
  CHECK(info.find("Endpoints:           10.0.0.11:50000, cp.example:6000") != std::string::npos);
  CHECK(info.find("Nodes:               10.0.0.21") != std::string::npos);
  CHECK(info.find("Roles:               os:admin") != std::string::npos);
  CHECK(info.find("2027-01-01T00:00:00Z (in 365d 0h)") != std::string::npos);
  CHECK(info.find("EXPIRED") == std::string::npos);

  f.clock.advance(std::chrono::hours(24 * 366));
  f.out.str("");
  REQUIRE(configInfo(f.env).isOk());
  CHECK(f.out.str().find("EXPIRED") != std::string::npos);
}

TEST_CASE("config commands without a config say how to get one") {
  Fixture f;
  const auto s = configContexts(f.env);
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(s.message().find("keelctl gen config") != std::string::npos);
}
