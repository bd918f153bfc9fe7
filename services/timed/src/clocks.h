// What timed reads: the node's clocks, and what the kernel's files say of their
// synchronization. The parsers take the files' text, so they are tested without the
// files; readClocks() reads the real ones.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace keel::timed {

struct RtcReading {
  std::string text;          // "2026-12-06 03:40:00" (the hardware clock keeps UTC on Keel nodes)
  int64_t unixSeconds = 0;   // the same, as seconds since the epoch
};

struct TimensOffsets {
  int64_t monotonicNanos = 0;
  int64_t boottimeNanos = 0;
};

struct ClockReadings {
  int64_t wallUnixNanos = 0;
  int64_t monotonicNanos = 0;
  int64_t bootNanos = 0;
  std::string clocksource;            // empty when unknown
  std::optional<RtcReading> rtc;      // none: no hardware clock, or unreadable
  TimensOffsets timens;
};

// /proc/driver/rtc: the "rtc_time" and "rtc_date" lines. None when either is missing or
// malformed.
std::optional<RtcReading> parseProcRtc(std::string_view text);

// /proc/self/timens_offsets: "monotonic <s> <ns>" and "boottime <s> <ns>" lines. Missing
// lines read as zero; a malformed one is ignored.
TimensOffsets parseTimensOffsets(std::string_view text);

// RFC 3339 in UTC with nanoseconds: "2026-12-06T03:40:00.123456789Z".
std::string formatRfc3339(int64_t unixNanos);

struct ClockFiles {
  std::filesystem::path rtc = "/proc/driver/rtc";
  std::filesystem::path timensOffsets = "/proc/self/timens_offsets";
  std::filesystem::path clocksource = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
};

// Reads the three clocks back to back, then the files (a missing file leaves its part empty).
ClockReadings readClocks(const ClockFiles& files = {});

}  // namespace keel::timed
