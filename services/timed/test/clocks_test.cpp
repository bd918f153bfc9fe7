#include <catch2/catch_test_macros.hpp>

#include "clocks.h"

using namespace keel::timed;

TEST_CASE("the hardware clock's reading is parsed from /proc/driver/rtc") {
  const auto r = parseProcRtc("rtc_time\t: 03:40:07\nrtc_date\t: 2026-12-06\nalrm_time\t: 00:00:00\n24hr\t\t: yes\n");
  REQUIRE(r.has_value());
  CHECK(r->text == "2026-12-06 03:40:07");
  CHECK(r->unixSeconds == 1796528407);
}

TEST_CASE("a malformed or partial rtc file gives no reading") {
  CHECK_FALSE(parseProcRtc("").has_value());
  CHECK_FALSE(parseProcRtc("rtc_time\t: 03:40:07\n").has_value());
  CHECK_FALSE(parseProcRtc("rtc_time\t: 03:40\nrtc_date\t: 2026-12-06\n").has_value());
  CHECK_FALSE(parseProcRtc("rtc_time\t: 25:00:00\nrtc_date\t: 2026-12-06\n").has_value());
  CHECK_FALSE(parseProcRtc("rtc_time\t: 03:40:07\nrtc_date\t: 2026-13-06\n").has_value());
  CHECK_FALSE(parseProcRtc("rtc_time\t: 03:40:07x\nrtc_date\t: 2026-12-06\n").has_value());
}

TEST_CASE("time namespace offsets are read in nanoseconds") {
  const auto o = parseTimensOffsets("monotonic           5 250\nboottime         -3 0\n");
  CHECK(o.monotonicNanos == 5'000'000'250);
  CHECK(o.boottimeNanos == -3'000'000'000);
  const auto none = parseTimensOffsets("monotonic x 1\nboottime 1\n");
  CHECK(none.monotonicNanos == 0);
  CHECK(none.boottimeNanos == 0);
}

TEST_CASE("wall time is formatted as RFC 3339 in UTC with nanoseconds") {
  CHECK(formatRfc3339(0) == "1970-01-01T00:00:00.000000000Z");
  CHECK(formatRfc3339(1796528407'000000123) == "2026-12-06T03:40:07.000000123Z");
  CHECK(formatRfc3339(-1) == "1969-12-31T23:59:59.999999999Z");
}

TEST_CASE("the real clocks are read in order and the missing files leave their parts empty") {
  ClockFiles files;
  files.rtc = "/nonexistent/rtc";
  files.timensOffsets = "/nonexistent/timens";
  files.clocksource = "/nonexistent/clocksource";
  const auto r = readClocks(files);
  CHECK(r.wallUnixNanos > 1'700'000'000'000'000'000);
  CHECK(r.monotonicNanos > 0);
  CHECK(r.bootNanos >= r.monotonicNanos);
  CHECK(r.clocksource.empty());
  CHECK_FALSE(r.rtc.has_value());
}
