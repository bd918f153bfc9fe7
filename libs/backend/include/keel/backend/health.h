// grpc.health.v1 for a Keel daemon, served by its own synchronous server. gRPC's built-in
// health service runs on the callback API, whose completion queue brings polling threads
// of its own beside the server's: they take socket events the server's threads would
// handle and hand them over, which lengthens every call, not only health checks.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace keel::backend {

// Check only (Watch is UNIMPLEMENTED). The empty name is the daemon itself: SERVING until
// shutdown(). Thread-safe.
class HealthService final : public grpc::health::v1::Health::Service {
 public:
  // Sets the status one service reports.
  void setServing(const std::string& service, bool serving);
  // From now on every service, and the daemon itself, is NOT_SERVING (it is stopping).
  void shutdown();

  // SERVING or NOT_SERVING for a known service; NOT_FOUND for another.
  grpc::Status Check(grpc::ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;

 private:
  std::mutex mu_;
  std::map<std::string, bool, std::less<>> serving_{{"", true}};
  bool shutdown_ = false;
};

}  // namespace keel::backend
