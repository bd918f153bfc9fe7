#include "dashboard.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

namespace keel::keelctl {
namespace {

using Catch::Matchers::ContainsSubstring;

// Columns as a terminal counts them: one per UTF-8 character.
std::size_t columns(const std::string& line) {
  std::size_t n = 0;
  for (const char c : line) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

DashboardState sample() {
  DashboardState s;
  s.title = "through 127.0.1.1:50000";
  for (const char* name : {"127.0.1.1", "127.0.1.2", "127.0.1.3"}) {
    DashboardNode n;
    n.name = name;
    n.version = "0.1.0";
    n.uptimeSeconds = 3725;
    n.load1 = 0.5;
    n.memTotalKb = 8 * 1048576;
    n.memAvailableKb = 6 * 1048576;
    n.cpuPercent = 12.0;
    n.services = {{"apid", "running", 0}, {"machined", "running", 0}, {"timed", "running", 2}};
    s.nodes.push_back(n);
  }
  s.nodes[2].error = "connection refused";
  for (int i = 0; i < 100; ++i) s.log.push_back("log line " + std::to_string(i) + " ✓ " + std::string(120, 'x'));
  s.events = {"e1", "e2", "e3", "e4", "e5", "e6"};
  return s;
}

TEST_CASE("the dashboard fills an 80x24 terminal exactly and never runs past its width", "[keelctl][dashboard]") {
  const auto lines = renderDashboard(sample(), 80, 24);
  REQUIRE(lines.size() == 24);
  for (const auto& l : lines) CHECK(columns(l) <= 80);
  std::string screen;
  for (const auto& l : lines) screen += l + "\n";
  CHECK_THAT(screen, ContainsSubstring("> 127.0.1.1"));
  CHECK_THAT(screen, ContainsSubstring("up 1h02m"));
  CHECK_THAT(screen, ContainsSubstring("cpu  12%"));
  CHECK_THAT(screen, ContainsSubstring("load 0.50 0.00 0.00"));
  CHECK_THAT(screen, ContainsSubstring("mem 2.0/8.0G"));
  CHECK_THAT(screen, ContainsSubstring("127.0.1.3       NOT ANSWERING: connection refused"));
  CHECK_THAT(screen, ContainsSubstring("SERVICES on 127.0.1.1"));
  CHECK_THAT(screen, ContainsSubstring("timed                running    restarts 2"));
  CHECK_THAT(screen, ContainsSubstring("LOG of apid"));
  CHECK_THAT(screen, ContainsSubstring("log line 99"));  // the newest lines
  CHECK_THAT(screen, !ContainsSubstring("log line 80 "));
  CHECK_THAT(screen, ContainsSubstring("e6"));
  CHECK_THAT(screen, !ContainsSubstring("e2"));  // four events
}

TEST_CASE("a larger terminal shows more of the log and wider lines", "[keelctl][dashboard]") {
  const auto small = renderDashboard(sample(), 80, 24);
  const auto large = renderDashboard(sample(), 200, 60);
  REQUIRE(large.size() == 60);
  auto logLines = [](const std::vector<std::string>& lines) {
    return std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return l.starts_with("  log line"); });
  };
  CHECK(logLines(large) > logLines(small) + 30);
  std::size_t widest = 0;
  for (const auto& l : large) widest = std::max(widest, columns(l));
  CHECK(widest > 80);
  CHECK(widest <= 200);
}

TEST_CASE("keys move the selection and q quits", "[keelctl][dashboard]") {
  auto s = sample();
  CHECK(dashboardKey(s, "down"));
  CHECK(dashboardKey(s, "j"));
  CHECK(dashboardKey(s, "down"));  // stays on the last service
  CHECK(s.service == 2);
  CHECK(dashboardKey(s, "up"));
  CHECK(s.service == 1);
  CHECK(dashboardKey(s, "right"));
  CHECK(s.node == 1);
  CHECK(s.service == 0);
  CHECK(dashboardKey(s, "left"));
  CHECK(dashboardKey(s, "left"));  // wraps around
  CHECK(s.node == 2);
  CHECK_FALSE(dashboardKey(s, "q"));
  CHECK_FALSE(dashboardKey(s, "\x03"));
  const auto lines = renderDashboard(s, 80, 24);
  CHECK(lines[3].starts_with("> 127.0.1.3"));
}

TEST_CASE("a tiny or empty dashboard still renders", "[keelctl][dashboard]") {
  DashboardState empty;
  const auto lines = renderDashboard(empty, 10, 3);
  CHECK(lines.size() == 8);  // the smallest screen it draws
  auto s = sample();
  s.nodes[0].services.clear();
  CHECK(renderDashboard(s, 80, 24).size() == 24);
}

}  // namespace
}  // namespace keel::keelctl
