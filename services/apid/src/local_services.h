// The two standard gRPC services apid answers itself, for the whole node: health and
// server reflection. They sit behind the gateway like any backend (a manifest marked
// servedByApid), so the same admission, rules (readers and above, from their .proto) and
// audit apply; the gateway then answers them on the call's own completion queue, with no
// second server and no threads of their own.
//   - grpc.health.v1.Health/Check: the empty service name is apid itself (SERVING); any
//     other is asked of the backend that serves it, over the same verified connection
//     calls use; a backend that cannot be reached is NOT_SERVING; a service no backend
//     serves is NOT_FOUND.
//   - grpc.reflection.v1alpha.ServerReflection: lists every routed service and answers
//     with the descriptors apid routes by (each backend's descriptor set, or apid's own
//     for the built-in APIs), so standard tools discover every backend's API.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "forwarders.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "routes.h"

namespace keel::apid {

// apid's own manifest: the services below.
contracts::RouteEntry localServicesManifest();

// How a health check of one service is answered: by apid alone (`answer`, or `refusal`
// for a service nobody serves), or by asking `backend`.
struct HealthPlan {
  std::optional<grpc::health::v1::HealthCheckResponse::ServingStatus> answer;
  std::optional<grpc::Status> refusal;
  std::shared_ptr<const contracts::RouteEntry> backend;
};
HealthPlan planHealthCheck(const Routes& routes, const std::string& service);

// The client's answer once `backend` answered its own health check with `status` (and
// `response` when OK): a backend that is down or too slow is NOT_SERVING (and `retire`
// is set, so the next call connects again); any other failure names the backend.
grpc::Status healthFromBackend(const grpc::Status& status, const std::string& backend,
                               grpc::health::v1::HealthCheckResponse* response, bool* retire);

// One reflection answer.
grpc::reflection::v1alpha::ServerReflectionResponse reflectionAnswer(
    const Routes& routes, const grpc::reflection::v1alpha::ServerReflectionRequest& request);

// Serves one admitted call to apid's own services on the call's completion queue:
// Health/Check (asking a backend with an asynchronous call when needed) and the
// reflection stream. Any other method of those services is UNIMPLEMENTED.
class LocalServicesForwarder final : public Forwarder {
 public:
  LocalServicesForwarder(ServerCall& call, std::shared_ptr<const Routes> routes, Upstreams& upstreams,
                         std::chrono::milliseconds healthTimeout);
  void start() override;
  void cancel() override;

 private:
  void onHealthRequest(bool ok);
  void onHealthUpstream(bool ok);
  void onReflectionRequest(bool ok);
  void onReflectionWrite(bool ok);
  void reply(const grpc::health::v1::HealthCheckResponse& response);

  ServerCall& call_;
  std::shared_ptr<const Routes> routes_;
  Upstreams& upstreams_;
  std::chrono::milliseconds healthTimeout_;
  std::string backendName_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::ClientContext cctx_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary_;
  bool upstreamStarted_ = false;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_;
  grpc::Status upStatus_;

  OpOf<LocalServicesForwarder, &LocalServicesForwarder::onHealthRequest> healthRequestOp_{this};
  OpOf<LocalServicesForwarder, &LocalServicesForwarder::onHealthUpstream> healthUpstreamOp_{this};
  OpOf<LocalServicesForwarder, &LocalServicesForwarder::onReflectionRequest> reflectionRequestOp_{this};
  OpOf<LocalServicesForwarder, &LocalServicesForwarder::onReflectionWrite> reflectionWriteOp_{this};
};

}  // namespace keel::apid
