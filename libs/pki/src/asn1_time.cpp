// ASN.1 times to and from TimePoint, and the validity periods Keel accepts.
#include "internal.h"

namespace keel::pki::internal {
namespace {

constexpr std::chrono::seconds kSecondsPerDay{86400};

}  // namespace

Result<TimePoint> fromAsn1Time(const ASN1_TIME* time) {
  if (time == nullptr) return invalidArgument("expected a time, found none");
  TimePtr epoch(ASN1_TIME_set(nullptr, 0));
  KEEL_RELEASE_ASSERT(epoch != nullptr, "out of memory");
  int days = 0;
  int seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, epoch.get(), time) != 1) {
    return cryptoError(StatusCode::kInvalidArgument, "malformed ASN.1 time");
  }
  // TimePoint counts nanoseconds and ends in 2262; RFC 5280's "no expiry" value
  // 99991231235959Z lies beyond, so clamp instead of overflowing.
  const int64_t total = int64_t{days} * kSecondsPerDay.count() + seconds;
  const auto max =
      std::chrono::duration_cast<std::chrono::seconds>(TimePoint::max().time_since_epoch()).count();
  const auto min =
      std::chrono::duration_cast<std::chrono::seconds>(TimePoint::min().time_since_epoch()).count();
  if (total >= max) return TimePoint::max();
  if (total <= min) return TimePoint::min();
  return TimePoint(std::chrono::seconds(total));
}

Result<TimePtr> toAsn1Time(TimePoint time) {
  TimePtr out(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(time)));
  if (out == nullptr)
    return cryptoError(StatusCode::kInvalidArgument, "cannot encode time " + formatTime(time));
  return out;
}

Status checkValidity(std::chrono::seconds validity, std::string_view what) {
  if (validity <= std::chrono::seconds::zero() || validity > kMaxValidity) {
    return invalidArgument("expected " + std::string(what) + " between 1 s and " +
                           std::to_string(kMaxValidity.count()) + " s, got " +
                           std::to_string(validity.count()) + " s");
  }
  return Status::ok();
}

}  // namespace keel::pki::internal
