#include "keel/config/duration.h"

#include <catch2/catch_test_macros.hpp>

using namespace std::chrono;
using keel::config::formatDuration;
using keel::config::parseDuration;

namespace {
constexpr seconds kMax = hours(24 * 365 * 100);
}

TEST_CASE("parses Go-like durations plus days") {
  CHECK(*parseDuration("24h", kMax) == hours(24));
  CHECK(*parseDuration("90m", kMax) == minutes(90));
  CHECK(*parseDuration("8760h", kMax) == hours(8760));
  CHECK(*parseDuration("30s", kMax) == seconds(30));
  CHECK(*parseDuration("1h30m", kMax) == minutes(90));
  CHECK(*parseDuration("10d", kMax) == hours(240));
  CHECK(*parseDuration("1d2h3m4s", kMax) == seconds(86400 + 7200 + 180 + 4));
}

TEST_CASE("refuses zero, negative, absurd and malformed durations") {
  for (const char* bad : {"", "0s", "0h", "-1h", "24", "h", "1x", "1.5h", "10ms", "1h 30m", "99999999999999999999h",
                          "1000000d"}) {
    INFO(bad);
    auto r = parseDuration(bad, kMax);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == keel::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("expected e.g. 24h") != std::string::npos);
  }
  CHECK(parseDuration("25h", hours(24)).status().message().find("longer than the maximum of 24h") != std::string::npos);
}

TEST_CASE("formats durations in the form it parses") {
  CHECK(formatDuration(hours(8760)) == "8760h");
  CHECK(formatDuration(minutes(90)) == "1h30m");
  CHECK(formatDuration(seconds(45)) == "45s");
  CHECK(*parseDuration(formatDuration(seconds(3723)), kMax) == seconds(3723));
}

TEST_CASE("a number that is in range alone but not times its unit is refused, not wrapped") {
  // 989999999999992 days is below the 2^50 bound on a number, but not in seconds.
  const auto r = parseDuration("989999999999992d39s", kMax);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("too large") != std::string::npos);
  CHECK_FALSE(parseDuration("1125899906842624s1125899906842624s", kMax).ok());
}
