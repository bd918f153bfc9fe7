#include <sstream>

#include <catch2/catch_test_macros.hpp>

#include "time_command.h"

using namespace keel::keelctl;
namespace tv1 = keel::time::v1;

TEST_CASE("clock durations are days, hours, minutes and seconds with milliseconds") {
  constexpr int64_t kMs = 1'000'000;
  CHECK(formatClockDuration(0) == "0.000s");
  CHECK(formatClockDuration(6'123 * kMs + 999'999) == "6.123s");
  CHECK(formatClockDuration(300'250 * kMs) == "5m0.250s");
  CHECK(formatClockDuration(3'600'000 * kMs) == "1h0m0.000s");
  CHECK(formatClockDuration(((((3 * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 123) * kMs) == "3d4h5m6.123s");
  CHECK(formatClockDuration(-1'500 * kMs) == "-1.500s");
  CHECK(formatClockDuration(INT64_MIN).starts_with("-106751d"));
}

TEST_CASE("the hardware clock offset is signed, and '-' without a hardware clock") {
  tv1::Sync sync;
  CHECK(formatRtcOffset(sync) == "-");
  sync.set_rtc_present(true);
  CHECK(formatRtcOffset(sync) == "+0s");
  sync.set_rtc_offset_seconds(2);
  CHECK(formatRtcOffset(sync) == "+2s");
  sync.set_rtc_offset_seconds(-37);
  CHECK(formatRtcOffset(sync) == "-37s");
}

TEST_CASE("time prints one row per node and reports a failed node on stderr") {
  MachineTarget target;
  target.socket = "/nonexistent/keelctl-time-test.sock";  // never dialled: only printing
  MachineClient client(target);
  std::ostringstream out, err;
  std::istringstream in;
  MachineCommandEnv env{client, OutputFormat::kTable, out, err, in};

  tv1::NowResponse resp;
  auto* a = resp.add_messages();
  a->mutable_metadata()->set_node("127.0.1.1");
  a->set_wall_rfc3339("2026-12-06T03:20:23.123456789Z");
  a->set_monotonic_nanos(((4 * 60 + 5) * 60 + 6) * 1'000'000'000LL + 123'000'000);
  a->set_boot_nanos(86'400'000'000'000LL);
  a->mutable_sync()->set_clocksource("tsc");
  a->mutable_sync()->set_rtc_present(true);
  a->mutable_sync()->set_rtc_offset_seconds(2);
  auto* b = resp.add_messages();
  b->mutable_metadata()->set_node("127.0.1.2");
  b->set_wall_unix_nanos(1'767'225'600'000'000'000LL);
  b->set_monotonic_nanos(1'000'000);
  b->set_boot_nanos(1'000'000);
  auto* c = resp.add_messages();
  c->mutable_metadata()->set_node("127.0.1.3");
  c->mutable_metadata()->set_error("connection refused");
  c->mutable_metadata()->set_code(14);

  const auto st = printTimes(env, resp);
  CHECK(st.code() == keel::StatusCode::kUnavailable);
  CHECK(st.message() == "1 of 3 nodes failed");
  CHECK(out.str() ==
        "NODE        WALL                             MONOTONIC    BOOT           CLOCKSOURCE   RTC OFFSET\n"
        "127.0.1.1   2026-12-06T03:20:23.123456789Z   4h5m6.123s   1d0h0m0.000s   tsc           +2s\n"
        "127.0.1.2   2026-01-01T00:00:00Z             0.001s       0.001s         -             -\n");
  CHECK(err.str() == "127.0.1.3: connection refused\n");

  out.str("");
  env.format = OutputFormat::kJson;
  (void)printTimes(env, resp);
  CHECK(out.str().find("\"rtc_offset_seconds\": \"2\"") != std::string::npos);
  CHECK(out.str().find("\"clocksource\": \"tsc\"") != std::string::npos);
}
