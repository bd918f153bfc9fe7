#include "src/state/event_journal.h"

#include <catch2/catch_test_macros.hpp>

namespace keel::machined {
namespace {

TEST_CASE("the journal keeps the newest events up to its capacity, in order", "[events]") {
  ManualClock clock{std::chrono::system_clock::from_time_t(0)};
  EventJournal j(clock, 3);
  for (int i = 0; i < 5; ++i) j.record("service", "s" + std::to_string(i), "running", "");
  const auto all = j.tail(0);
  REQUIRE(all.size() == 3);
  CHECK(all[0].subject == "s2");
  CHECK(all[2].subject == "s4");
  CHECK(all[2].sequence == 5);
  CHECK(j.tail(1).front().subject == "s4");
}

TEST_CASE("a follower gets the tail and then every later event exactly once", "[events]") {
  ManualClock clock{std::chrono::system_clock::from_time_t(0)};
  EventJournal j(clock, 100);
  j.record("config", "machine-config", "loaded", "");
  std::vector<std::string> seen;
  supervisor::Subscription sub;
  const auto initial = j.tailAndFollow(10, [&](const NodeEvent& e) { seen.push_back(e.state); }, sub);
  REQUIRE(initial.size() == 1);
  j.record("service", "a", "starting", "");
  j.record("service", "a", "running", "");
  sub.reset();
  j.record("service", "a", "exited", "");
  CHECK(seen == std::vector<std::string>{"starting", "running"});
}

}  // namespace
}  // namespace keel::machined
