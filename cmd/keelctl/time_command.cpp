#include "time_command.h"

#include <cstdlib>

#include <fmt/format.h>

namespace keel::keelctl {

namespace tv1 = keel::time::v1;

std::string formatClockDuration(int64_t nanos) {
  const std::string sign = nanos < 0 ? "-" : "";
  // In milliseconds, rounded down; the magnitude of INT64_MIN fits an unsigned.
  uint64_t ms = (nanos < 0 ? 0 - static_cast<uint64_t>(nanos) : static_cast<uint64_t>(nanos)) / 1'000'000;
  const uint64_t days = ms / 86'400'000;
  ms %= 86'400'000;
  const uint64_t hours = ms / 3'600'000;
  ms %= 3'600'000;
  const uint64_t minutes = ms / 60'000;
  ms %= 60'000;
  std::string out = sign;
  if (days > 0) out += fmt::format("{}d", days);
  if (days > 0 || hours > 0) out += fmt::format("{}h", hours);
  if (days > 0 || hours > 0 || minutes > 0) out += fmt::format("{}m", minutes);
  return out + fmt::format("{}.{:03}s", ms / 1000, ms % 1000);
}

std::string formatRtcOffset(const tv1::Sync& sync) {
  if (!sync.rtc_present()) return "-";
  const int64_t s = sync.rtc_offset_seconds();
  return fmt::format("{}{}s", s < 0 ? "-" : "+",
                     s < 0 ? 0 - static_cast<uint64_t>(s) : static_cast<uint64_t>(s));
}

Status printTimes(MachineCommandEnv& env, const tv1::NowResponse& resp) {
  return printNodeTable(env, resp, {"NODE", "WALL", "MONOTONIC", "BOOT", "CLOCKSOURCE", "RTC OFFSET"},
                        [](const std::string& node, const tv1::Time& t, TableRows& rows) {
                          const std::string wall =
                              t.wall_rfc3339().empty() ? humanTime(t.wall_unix_nanos()) : t.wall_rfc3339();
                          const std::string& source = t.sync().clocksource();
                          rows.push_back({node, wall, formatClockDuration(t.monotonic_nanos()),
                                          formatClockDuration(t.boot_nanos()), source.empty() ? "-" : source,
                                          formatRtcOffset(t.sync())});
                        });
}

Status cmdTime(MachineCommandEnv& env) {
  auto resp = callServiceNodes<tv1::TimeService>(env, &tv1::TimeService::Stub::Now, tv1::NowRequest{});
  if (!resp.ok() && resp.status().code() == StatusCode::kUnimplemented) {
    return resp.status().withContext(
        "the node does not serve keel.time.v1.TimeService: is the time extension (timed) installed on it? "
        "('keelctl services' lists what runs)");
  }
  if (!resp.ok()) return resp.status();
  return printTimes(env, *resp);
}

}  // namespace keel::keelctl
