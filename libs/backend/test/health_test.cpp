#include "keel/backend/health.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

namespace keel::backend {
namespace {

namespace health = grpc::health::v1;
using Catch::Matchers::ContainsSubstring;

health::HealthCheckResponse::ServingStatus check(health::Health::Stub& stub, const std::string& service,
                                                 grpc::Status* status) {
  grpc::ClientContext ctx;
  health::HealthCheckRequest request;
  request.set_service(service);
  health::HealthCheckResponse response;
  *status = stub.Check(&ctx, request, &response);
  return response.status();
}

TEST_CASE("health reports each service as set, NOT_FOUND for an unknown one, and NOT_SERVING after shutdown",
          "[health]") {
  HealthService service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = health::Health::NewStub(server->InProcessChannel(grpc::ChannelArguments()));

  grpc::Status st;
  CHECK(check(*stub, "", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  check(*stub, "keel.time.v1.TimeService", &st);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(st.error_message(), ContainsSubstring("keel.time.v1.TimeService"));

  service.setServing("keel.time.v1.TimeService", true);
  CHECK(check(*stub, "keel.time.v1.TimeService", &st) == health::HealthCheckResponse::SERVING);
  service.setServing("keel.time.v1.TimeService", false);
  CHECK(check(*stub, "keel.time.v1.TimeService", &st) == health::HealthCheckResponse::NOT_SERVING);
  service.setServing("keel.time.v1.TimeService", true);

  service.shutdown();
  CHECK(check(*stub, "", &st) == health::HealthCheckResponse::NOT_SERVING);
  CHECK(check(*stub, "keel.time.v1.TimeService", &st) == health::HealthCheckResponse::NOT_SERVING);
  CHECK(st.ok());
  server->Shutdown();
}

}  // namespace
}  // namespace keel::backend
