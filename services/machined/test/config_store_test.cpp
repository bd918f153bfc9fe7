#include "src/state/config_store.h"

#include <sys/stat.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"
#include "test_config.h"

namespace keel::machined {
namespace {

using Catch::Matchers::ContainsSubstring;
using config::MachineConfig;

struct Fixture {
  keel::testing::TempDir dir;
  NodePaths paths{dir.path()};
  ManualClock clock{std::chrono::system_clock::from_time_t(1'800'000'000)};
  MachineConfig initial = testing::controlPlaneConfig();
  std::vector<MachineConfig> applied;
  std::vector<std::string> events;
  ConfigStore store{paths, clock};

  Fixture() {
    REQUIRE(config::writeMachineConfigFile(dir / "initial.json", initial, config::Overwrite::kNo).isOk());
    REQUIRE(store.load(dir / "initial.json").isOk());
    store.setLiveApplier([this](const MachineConfig& c) { applied.push_back(c); });
    store.setEventSink([this](const std::string& s, const std::string&) { events.push_back(s); });
  }
  MachineConfig onDisk() const { return *config::readMachineConfigFile(paths.configFile()); }
};

TEST_CASE("a new node stores its initial config with mode 0600, and the stored one wins afterwards",
          "[config-store]") {
  Fixture f;
  struct stat st {};
  REQUIRE(stat(f.paths.configFile().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(f.onDisk() == f.initial);

  MachineConfig other = f.initial;
  other.hostname = "stored";
  REQUIRE(config::writeMachineConfigFile(f.paths.configFile(), other, config::Overwrite::kYes).isOk());
  ConfigStore again(f.paths, f.clock);
  REQUIRE(again.load(f.dir / "initial.json").isOk());
  CHECK(again.current().hostname == std::optional<std::string>("stored"));
}

TEST_CASE("a node with no stored config and none given does not start", "[config-store]") {
  keel::testing::TempDir dir;
  ManualClock clock{std::chrono::system_clock::now()};
  ConfigStore store(NodePaths(dir.path()), clock);
  const auto st = store.load(std::nullopt);
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(st.message(), ContainsSubstring("--config"));
}

TEST_CASE("invalid config is refused with the field named and nothing is written", "[config-store]") {
  Fixture f;
  auto broken = config::serializeMachineConfig(f.initial);
  const auto pos = broken.find("\"controlplane\"");
  REQUIRE(pos != std::string::npos);
  broken.replace(pos, 14, "\"superbox\"");
  const auto r = f.store.apply(broken, ApplyMode::kAuto, std::chrono::seconds(60));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(r.status().message(), ContainsSubstring("machine.type"));
  CHECK(f.onDisk() == f.initial);
  CHECK_FALSE(std::filesystem::exists(f.paths.previousConfigFile()));

  const auto garbage = f.store.apply("{not json", ApplyMode::kAuto, std::chrono::seconds(60));
  CHECK(garbage.status().code() == StatusCode::kInvalidArgument);
  CHECK(f.applied.empty());
}

TEST_CASE("a hostname change applies without reboot and keeps the previous config", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.hostname = "node-a";
  const auto r = f.store.apply(config::serializeMachineConfig(next), ApplyMode::kAuto, std::chrono::seconds(60));
  REQUIRE(r.ok());
  CHECK(r->mode == ApplyMode::kNoReboot);
  CHECK_FALSE(r->rebootRequired);
  CHECK(r->changedFields == std::vector<std::string>{"machine.network.hostname"});
  CHECK(f.onDisk() == next);
  CHECK(*config::readMachineConfigFile(f.paths.previousConfigFile()) == f.initial);
  REQUIRE(f.applied.size() == 1);
  CHECK(f.applied[0] == next);
}

TEST_CASE("join tokens apply without reboot; another change next to them still needs one", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.trustd.acceptedTokens = {"zzzzzz.zzzzzzzzzzzzzzzz"};
  next.token = "yyyyyy.yyyyyyyyyyyyyyyy";
  const auto r = f.store.apply(config::serializeMachineConfig(next), ApplyMode::kNoReboot, std::chrono::seconds(60));
  REQUIRE(r.ok());
  CHECK(r->changedFields == std::vector<std::string>{"machine.token", "machine.trustd.acceptedTokens"});
  REQUIRE(f.applied.size() == 1);
  CHECK(f.applied[0] == next);

  // A change computed from a config that is no longer the current one is refused.
  const auto stale = f.store.apply(config::serializeMachineConfig(f.initial), ApplyMode::kNoReboot,
                                   std::chrono::seconds(60), &f.initial);
  CHECK(stale.status().code() == StatusCode::kAborted);
  CHECK(f.onDisk() == next);

  MachineConfig more = next;
  more.trustd.acceptedTokens.clear();
  more.trustd.joinRatePerMinute = 5;
  const auto refused =
      f.store.apply(config::serializeMachineConfig(more), ApplyMode::kNoReboot, std::chrono::seconds(60));
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), ContainsSubstring("(other)"));
}

TEST_CASE("a change that needs a reboot is refused in no-reboot and try modes, and stored in auto mode",
          "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.clusterName = "renamed";
  const auto json = config::serializeMachineConfig(next);
  for (auto mode : {ApplyMode::kNoReboot, ApplyMode::kTry}) {
    const auto r = f.store.apply(json, mode, std::chrono::seconds(60));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(r.status().message(), ContainsSubstring("cluster.name"));
    CHECK(f.onDisk() == f.initial);
  }
  const auto r = f.store.apply(json, ApplyMode::kAuto, std::chrono::seconds(60));
  REQUIRE(r.ok());
  CHECK(r->mode == ApplyMode::kReboot);
  CHECK(r->rebootRequired);
  CHECK(f.onDisk() == next);
  CHECK(f.applied.empty());
}

TEST_CASE("a config applied in try mode rolls back by itself when not confirmed in time", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.hostname = "trial";
  const auto r = f.store.apply(config::serializeMachineConfig(next), ApplyMode::kTry, std::chrono::seconds(30));
  REQUIRE(r.ok());
  CHECK(r->mode == ApplyMode::kTry);
  CHECK(f.onDisk() == next);
  REQUIRE(f.store.tryDeadline().has_value());

  f.clock.advance(std::chrono::seconds(29));
  CHECK_FALSE(f.store.expireTry());
  CHECK(f.store.current() == next);

  f.clock.advance(std::chrono::seconds(2));
  CHECK(f.store.expireTry());
  CHECK(f.store.current() == f.initial);
  CHECK(f.onDisk() == f.initial);
  REQUIRE(f.applied.size() == 2);
  CHECK(f.applied.back() == f.initial);
  CHECK(f.events.back() == "rolled-back");
  CHECK_FALSE(f.store.tryDeadline().has_value());
  CHECK(f.store.confirm().status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("a confirmed try stays after its deadline", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.hostname = "kept";
  REQUIRE(f.store.apply(config::serializeMachineConfig(next), ApplyMode::kTry, std::chrono::seconds(10)).ok());
  REQUIRE(f.store.confirm().ok());
  f.clock.advance(std::chrono::minutes(5));
  CHECK_FALSE(f.store.expireTry());
  CHECK(f.onDisk() == next);
}

TEST_CASE("while a try is pending, other modes are refused", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.hostname = "pending";
  REQUIRE(f.store.apply(config::serializeMachineConfig(next), ApplyMode::kTry, std::chrono::seconds(10)).ok());
  const auto r = f.store.apply(config::serializeMachineConfig(f.initial), ApplyMode::kNoReboot, std::chrono::seconds(0));
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(r.status().message(), ContainsSubstring("try mode is pending"));
}

TEST_CASE("a try timeout outside 1s..24h is refused", "[config-store]") {
  Fixture f;
  MachineConfig next = f.initial;
  next.hostname = "x";
  CHECK(f.store.apply(config::serializeMachineConfig(next), ApplyMode::kTry, std::chrono::seconds(0)).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(f.onDisk() == f.initial);
}

}  // namespace
}  // namespace keel::machined
