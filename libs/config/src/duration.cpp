#include "keel/config/duration.h"

#include <cstdint>

#include <fmt/format.h>

namespace keel::config {

Result<std::chrono::seconds> parseDuration(std::string_view text, std::chrono::seconds max) {
  const auto bad = [&](std::string_view why) {
    return invalidArgument(fmt::format("invalid duration '{}': {} (expected e.g. 24h, 90m, 1h30m, 10d)", text, why));
  };
  if (text.empty()) return bad("empty");
  if (text[0] == '-') return bad("must be positive");
  // Stays far below overflow: anything above `max` (at most a century or so) is refused
  // long before int64 seconds could wrap.
  constexpr int64_t kLimit = int64_t{1} << 50;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > kLimit) return bad("too large");
      ++i;
    }
    if (i == start) return bad(fmt::format("expected a number at offset {}", start));
    if (i == text.size()) return bad("missing unit after the last number (d, h, m or s)");
    int64_t unit = 0;
    switch (text[i]) {
      case 'd': unit = 86400; break;
      case 'h': unit = 3600; break;
      case 'm': unit = 60; break;
      case 's': unit = 1; break;
      default: return bad(fmt::format("unknown unit '{}' (expected d, h, m or s)", text[i]));
    }
    ++i;
    // "ms" and "us" are valid in Go but make no sense for these settings.
    if (i < text.size() && text[i] == 's' && unit == 60) return bad("sub-second units are not supported");
    // value * unit alone can pass int64 (2^50 days): compare before multiplying.
    if (value > (kLimit - total) / unit) return bad("too large");
    total += value * unit;
  }
  if (total <= 0) return bad("must be positive");
  if (total > max.count()) {
    return bad(fmt::format("longer than the maximum of {}", formatDuration(max)));
  }
  return std::chrono::seconds(total);
}

std::string formatDuration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  const int64_t h = s / 3600;
  const int64_t m = (s % 3600) / 60;
  const int64_t sec = s % 60;
  if (h > 0) out += fmt::format("{}h", h);
  if (m > 0) out += fmt::format("{}m", m);
  if (sec > 0) out += fmt::format("{}s", sec);
  return out;
}

}  // namespace keel::config
