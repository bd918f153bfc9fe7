// The two standard gRPC services apid answers itself, for the whole node: health and
// server reflection. They sit behind the gateway like any backend (a manifest marked
// servedByApid, reached over an in-process channel), so the same admission, rules
// (readers and above, from their .proto) and audit apply.
//   - grpc.health.v1.Health/Check: the empty service name is apid itself (SERVING); any
//     other is asked of the backend that serves it, over the same verified connection
//     calls use; a backend that cannot be reached is NOT_SERVING; a service no backend
//     serves is NOT_FOUND.
//   - grpc.reflection.v1alpha.ServerReflection: lists every routed service and answers
//     with the descriptors apid routes by (each backend's descriptor set, or apid's own
//     for the built-in APIs), so standard tools discover every backend's API.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "forwarders.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "routes.h"

namespace keel::apid {

using RoutesSource = std::function<std::shared_ptr<const Routes>()>;

// apid's own manifest: the services below.
BackendManifest localServicesManifest();

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  HealthService(RoutesSource routes, Upstreams& upstreams, std::chrono::milliseconds timeout)
      : routes_(std::move(routes)), upstreams_(upstreams), timeout_(timeout) {}
  grpc::Status Check(grpc::ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;

 private:
  RoutesSource routes_;
  Upstreams& upstreams_;
  std::chrono::milliseconds timeout_;
};

class ReflectionService final : public grpc::reflection::v1alpha::ServerReflection::Service {
 public:
  explicit ReflectionService(RoutesSource routes) : routes_(std::move(routes)) {}
  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1alpha::ServerReflectionResponse,
                               grpc::reflection::v1alpha::ServerReflectionRequest>* stream) override;

  // One answer (exposed for tests).
  static grpc::reflection::v1alpha::ServerReflectionResponse answer(
      const Routes& routes, const grpc::reflection::v1alpha::ServerReflectionRequest& request);

 private:
  RoutesSource routes_;
};

}  // namespace keel::apid
