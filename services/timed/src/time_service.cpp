#include "time_service.h"

namespace keel::timed {

void fillTime(const ClockReadings& r, const std::string& node, keel::time::v1::Time& out) {
  out.mutable_metadata()->set_node(node);
  out.set_wall_unix_nanos(r.wallUnixNanos);
  out.set_wall_rfc3339(formatRfc3339(r.wallUnixNanos));
  out.set_monotonic_nanos(r.monotonicNanos);
  out.set_boot_nanos(r.bootNanos);
  auto* sync = out.mutable_sync();
  sync->set_clocksource(r.clocksource);
  if (r.rtc) {
    sync->set_rtc_present(true);
    sync->set_rtc_time(r.rtc->text);
    sync->set_rtc_offset_seconds(r.wallUnixNanos / 1'000'000'000 - r.rtc->unixSeconds);
  }
  sync->set_timens_monotonic_offset_nanos(r.timens.monotonicNanos);
  sync->set_timens_boot_offset_nanos(r.timens.boottimeNanos);
}

grpc::Status TimeServiceImpl::Now(grpc::ServerContext* context, const keel::time::v1::NowRequest* /*request*/,
                                  keel::time::v1::NowResponse* response) {
  KEEL_AUTHORIZE(context);
  fillTime(reader_(), node_, *response->add_messages());
  return grpc::Status::OK;
}

}  // namespace keel::timed
