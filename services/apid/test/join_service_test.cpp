// Refused joins in the audit log: bounded whatever unauthenticated callers send.
#include "join_service.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "keel/testing/testing.h"

namespace keel::apid {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;

struct Log {
  testing::TempDir dir;
  ManualClock clock{std::chrono::sys_days{std::chrono::year{2030} / 1 / 1}};
  std::unique_ptr<AuditLog> audit = AuditLog::open(dir.path(), 1 << 20, 1, false, clock).value();
  RefusalSummary summary{audit.get(), clock};

  std::vector<nlohmann::json> lines() {
    audit->flush();
    std::vector<nlohmann::json> out;
    std::istringstream in(testing::readFile(dir / "audit.log"));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

AuditRecord refusal(const std::string& peer, const std::string& reason = "the join token is not accepted") {
  AuditRecord r;
  r.peer = peer;
  r.identity = "<joining node>";
  r.method = "/keel.security.v1.SecurityService/SignNodeCertificate";
  r.allowed = false;
  r.code = StatusCode::kUnauthenticated;
  r.reason = reason;
  return r;
}

TEST_CASE("a source's first refused join is written at once, the rest of its minute as one counted line",
          "[join]") {
  Log log;
  for (int i = 0; i < 500; ++i) log.summary.refused(refusal("ipv4:203.0.113.9:" + std::to_string(40000 + i)));
  auto lines = log.lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["event"] == "call");
  CHECK(lines[0]["decision"] == "deny");

  log.clock.advance(30s);
  log.summary.flush();
  CHECK(log.lines().size() == 1);  // the minute is not over
  log.clock.advance(31s);
  log.summary.flush();
  lines = log.lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[1]["event"] == "summary");
  CHECK(lines[1]["count"] == 499);
  CHECK(lines[1]["peer"] == "203.0.113.9");
  CHECK_THAT(lines[1]["reason"].get<std::string>(), ContainsSubstring("join token is not accepted"));

  // A new minute starts with a line again.
  log.summary.refused(refusal("ipv4:203.0.113.9:1"));
  CHECK(log.lines().size() == 3);
}

TEST_CASE("every address of one IPv6 /64 is one source; other /64s and IPv4 addresses are their own", "[join]") {
  Log log;
  for (int i = 0; i < 300; ++i) {
    log.summary.refused(refusal("ipv6:[2001:db8:1:2:" + std::to_string(i) + "::1]:5000"));
  }
  log.summary.refused(refusal("ipv6:[2001:db8:1:3::1]:5000"));
  log.summary.refused(refusal("ipv4:198.51.100.1:5000"));
  log.summary.refused(refusal("ipv4:198.51.100.2:5000"));
  CHECK(log.lines().size() == 4);
  log.summary.flushAll();
  const auto lines = log.lines();
  REQUIRE(lines.size() == 5);
  CHECK(lines[4]["peer"] == "2001:db8:1:2::/64");
  CHECK(lines[4]["count"] == 299);
}

TEST_CASE("beyond the sources it tracks, refused joins share one summary", "[join]") {
  Log log;
  const auto sources = RefusalSummary::kMaxSources + 5000;
  for (size_t i = 0; i < sources; ++i) {
    log.summary.refused(refusal("ipv4:10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
                                std::to_string(i % 256) + ":1"));
  }
  log.summary.flushAll();
  const auto lines = log.lines();
  // One line per tracked source, the first of the rest, and the rest's summary.
  CHECK(lines.size() == RefusalSummary::kMaxSources + 2);
  CHECK(lines.back()["peer"] == "other sources");
  CHECK(lines.back()["count"] == 4999);
}

}  // namespace
}  // namespace keel::apid
