#include "clocks.h"

#include <time.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include "keel/common/text.h"

namespace keel::timed {

namespace {

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

// "key<spaces>: value" → value, when the line's key is `key`.
std::optional<std::string_view> valueOf(std::string_view line, std::string_view key) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || trim(line.substr(0, colon)) != key) return std::nullopt;
  return trim(line.substr(colon + 1));
}

bool parseInt(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

// "HH:MM:SS" or "YYYY-MM-DD" split on `sep` into exactly three numbers.
bool threeNumbers(std::string_view s, char sep, int64_t (&out)[3]) {
  for (int i = 0; i < 3; ++i) {
    const auto pos = i < 2 ? s.find(sep) : s.size();
    if (pos == std::string_view::npos || !parseInt(s.substr(0, pos), out[i])) return false;
    s.remove_prefix(i < 2 ? pos + 1 : pos);
  }
  return s.empty();
}

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t daysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::optional<std::string> readSmall(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string out(64 * 1024, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

int64_t nanosOf(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::optional<RtcReading> parseProcRtc(std::string_view text) {
  std::optional<std::string_view> time;
  std::optional<std::string_view> date;
  for (const auto line : lines(text)) {
    if (auto v = valueOf(line, "rtc_time")) time = v;
    if (auto v = valueOf(line, "rtc_date")) date = v;
  }
  if (!time || !date) return std::nullopt;
  int64_t hms[3];
  int64_t ymd[3];
  if (!threeNumbers(*time, ':', hms) || !threeNumbers(*date, '-', ymd)) return std::nullopt;
  if (ymd[1] < 1 || ymd[1] > 12 || ymd[2] < 1 || ymd[2] > 31 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 ||
      hms[0] < 0 || hms[1] < 0 || hms[2] < 0 || ymd[0] < 1900 || ymd[0] > 9999) {
    return std::nullopt;
  }
  RtcReading r;
  r.text = fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", ymd[0], ymd[1], ymd[2], hms[0], hms[1], hms[2]);
  r.unixSeconds = daysFromCivil(ymd[0], ymd[1], ymd[2]) * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
  return r;
}

TimensOffsets parseTimensOffsets(std::string_view text) {
  TimensOffsets out;
  for (const auto raw : lines(text)) {
    const auto line = trim(raw);
    const auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) continue;
    const auto name = line.substr(0, sp1);
    auto rest = trim(line.substr(sp1 + 1));
    const auto sp2 = rest.find(' ');
    if (sp2 == std::string_view::npos) continue;
    int64_t secs = 0;
    int64_t nanos = 0;
    if (!parseInt(rest.substr(0, sp2), secs) || !parseInt(trim(rest.substr(sp2 + 1)), nanos)) continue;
    if (secs > 9'000'000'000 || secs < -9'000'000'000 || nanos < 0 || nanos >= 1'000'000'000) continue;
    const int64_t total = secs * 1'000'000'000 + nanos;
    if (name == "monotonic") out.monotonicNanos = total;
    if (name == "boottime") out.boottimeNanos = total;
  }
  return out;
}

std::string formatRfc3339(int64_t unixNanos) {
  int64_t secs = unixNanos / 1'000'000'000;
  int64_t nanos = unixNanos % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --secs;
  }
  const time_t t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

ClockReadings readClocks(const ClockFiles& files) {
  ClockReadings r;
  r.wallUnixNanos = nanosOf(CLOCK_REALTIME);
  r.monotonicNanos = nanosOf(CLOCK_MONOTONIC);
  r.bootNanos = nanosOf(CLOCK_BOOTTIME);
  if (auto text = readSmall(files.clocksource)) r.clocksource = std::string(trim(*text));
  if (auto text = readSmall(files.rtc)) r.rtc = parseProcRtc(*text);
  if (auto text = readSmall(files.timensOffsets)) r.timens = parseTimensOffsets(*text);
  return r;
}

}  // namespace keel::timed
