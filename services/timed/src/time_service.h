// timed's API: TimeService.Now, for every client role. Nothing here can set a clock.
#pragma once

#include <functional>
#include <string>

#include "clocks.h"
#include "keel/backend/authorize.h"
#include "keel/time/v1/time.grpc.pb.h"

namespace keel::timed {

class TimeServiceImpl final : public backend::AuthorizedService<keel::time::v1::TimeService> {
 public:
  using Reader = std::function<ClockReadings()>;
  TimeServiceImpl(std::string nodeName, Reader reader) : node_(std::move(nodeName)), reader_(std::move(reader)) {}

  grpc::Status Now(grpc::ServerContext* context, const keel::time::v1::NowRequest* request,
                   keel::time::v1::NowResponse* response) override;

 private:
  std::string node_;
  Reader reader_;
};

// The reply entry for one reading (exposed for tests).
void fillTime(const ClockReadings& r, const std::string& node, keel::time::v1::Time& out);

}  // namespace keel::timed
