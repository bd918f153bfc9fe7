#include "keel/backend/health.h"

namespace keel::backend {

namespace health = grpc::health::v1;

void HealthService::setServing(const std::string& service, bool serving) {
  std::lock_guard lock(mu_);
  serving_[service] = serving;
}

void HealthService::shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
}

grpc::Status HealthService::Check(grpc::ServerContext* /*context*/, const health::HealthCheckRequest* request,
                                  health::HealthCheckResponse* response) {
  std::lock_guard lock(mu_);
  const auto it = serving_.find(request->service());
  if (it == serving_.end()) {
    return {grpc::StatusCode::NOT_FOUND, "service " + request->service() + " is not served here"};
  }
  response->set_status(it->second && !shutdown_ ? health::HealthCheckResponse::SERVING
                                                : health::HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

}  // namespace keel::backend
