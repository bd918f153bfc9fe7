#include "local_services.h"

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "callers.h"

namespace keel::apid {
namespace {

namespace health = grpc::health::v1;
namespace refl = grpc::reflection::v1alpha;
using Catch::Matchers::ContainsSubstring;

std::shared_ptr<const Routes> nodeRoutes() {
  return Routes::fromManifests({localServicesManifest(),
                                testing::builtinManifest("machined", "keel.machine.v1.MachineService"),
                                testing::builtinManifest("trustd", "keel.security.v1.SecurityService")});
}

// A backend's own health service: SERVING for one service name, NOT_FOUND otherwise.
class BackendHealth final : public health::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const health::HealthCheckRequest* r, health::HealthCheckResponse* out) override {
    if (r->service() != "keel.machine.v1.MachineService") return {grpc::StatusCode::NOT_FOUND, "unknown service"};
    out->set_status(health::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

// machined answers through an in-process channel; trustd is down.
class FakeUpstreams final : public Upstreams {
 public:
  explicit FakeUpstreams(std::shared_ptr<grpc::Channel> machined) : machined_(std::move(machined)) {}
  Result<std::shared_ptr<grpc::Channel>> backend(const BackendManifest& b) override {
    if (b.name == "machined") return machined_;
    return unavailable("nothing listens on " + b.socket.string());
  }
  Result<std::shared_ptr<grpc::Channel>> node(const std::string&) override { return unavailable("no peers"); }
  void retire(const std::shared_ptr<grpc::Channel>&) override {}

 private:
  std::shared_ptr<grpc::Channel> machined_;
};

health::HealthCheckResponse::ServingStatus check(health::Health::Stub& stub, const std::string& service,
                                                 grpc::Status* status) {
  grpc::ClientContext ctx;
  health::HealthCheckRequest request;
  request.set_service(service);
  health::HealthCheckResponse response;
  *status = stub.Check(&ctx, request, &response);
  return response.status();
}

TEST_CASE("health answers per service: apid itself, a backend's own answer, a backend that is down, an unknown one") {
  BackendHealth backendHealth;
  grpc::ServerBuilder backendBuilder;
  backendBuilder.RegisterService(&backendHealth);
  auto backend = backendBuilder.BuildAndStart();
  FakeUpstreams upstreams(backend->InProcessChannel({}));
  const auto routes = nodeRoutes();
  REQUIRE(routes->problems().empty());
  HealthService service([routes] { return routes; }, upstreams, std::chrono::milliseconds(2000));
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = health::Health::NewStub(server->InProcessChannel({}));

  grpc::Status st;
  CHECK(check(*stub, "", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(check(*stub, "grpc.reflection.v1alpha.ServerReflection", &st) == health::HealthCheckResponse::SERVING);
  CHECK(check(*stub, "keel.machine.v1.MachineService", &st) == health::HealthCheckResponse::SERVING);
  CHECK(st.ok());
  CHECK(check(*stub, "keel.security.v1.SecurityService", &st) == health::HealthCheckResponse::NOT_SERVING);
  CHECK(st.ok());
  check(*stub, "acme.nothing.v1.Nothing", &st);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(st.error_message(), ContainsSubstring("acme.nothing.v1.Nothing"));
  server->Shutdown();
  backend->Shutdown();
}

TEST_CASE("reflection lists every routed service and nothing else") {
  refl::ServerReflectionRequest r;
  r.set_host("node-1");
  r.set_list_services("*");
  const auto out = ReflectionService::answer(*nodeRoutes(), r);
  CHECK(out.valid_host() == "node-1");
  CHECK(out.original_request().list_services() == "*");
  std::vector<std::string> names;
  for (const auto& s : out.list_services_response().service()) names.push_back(s.name());
  CHECK(names == std::vector<std::string>{"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                                          "keel.machine.v1.MachineService", "keel.security.v1.SecurityService"});
}

TEST_CASE("reflection gives a service's file first, then every file it imports, once each") {
  refl::ServerReflectionRequest r;
  r.set_file_containing_symbol("keel.machine.v1.MachineService");
  const auto out = ReflectionService::answer(*nodeRoutes(), r);
  REQUIRE(out.has_file_descriptor_response());
  std::vector<std::string> files;
  for (const auto& bytes : out.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto proto;
    REQUIRE(proto.ParseFromString(bytes));
    files.push_back(proto.name());
  }
  REQUIRE(files.size() == 3);
  CHECK(files[0] == "keel/machine/v1/machine.proto");
  CHECK(std::find(files.begin(), files.end(), "keel/common/v1/common.proto") != files.end());
  CHECK(std::find(files.begin(), files.end(), "google/protobuf/descriptor.proto") != files.end());

  refl::ServerReflectionRequest byName;
  byName.set_file_by_filename("keel/common/v1/common.proto");
  CHECK(ReflectionService::answer(*nodeRoutes(), byName).file_descriptor_response().file_descriptor_proto_size() == 2);
  refl::ServerReflectionRequest method;
  method.set_file_containing_symbol("keel.machine.v1.MachineService.Version");
  CHECK(ReflectionService::answer(*nodeRoutes(), method).has_file_descriptor_response());
}

TEST_CASE("reflection answers an unknown symbol or an empty request with an error, not a failed stream") {
  refl::ServerReflectionRequest r;
  r.set_file_containing_symbol("acme.secret.v1.Hidden");
  auto out = ReflectionService::answer(*nodeRoutes(), r);
  CHECK(out.error_response().error_code() == static_cast<int>(grpc::StatusCode::NOT_FOUND));
  out = ReflectionService::answer(*nodeRoutes(), refl::ServerReflectionRequest{});
  CHECK(out.error_response().error_code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_CASE("no manifest may claim apid's own services") {
  auto claim = testing::builtinManifest("evil", "grpc.health.v1.Health");
  const auto routes = Routes::fromManifests({localServicesManifest(), claim});
  REQUIRE(routes->problems().size() == 1);
  CHECK_THAT(routes->problems()[0].status.message(), ContainsSubstring("already served by backend apid"));
}

}  // namespace
}  // namespace keel::apid
