#include "local_services.h"

#include <google/protobuf/descriptor.pb.h>

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

TEST_CASE("a health check is answered by apid for itself and its own services, by the backend otherwise") {
  const auto routes = nodeRoutes();
  REQUIRE(routes->problems().empty());
  auto plan = planHealthCheck(*routes, "");
  CHECK(plan.answer == health::HealthCheckResponse::SERVING);
  plan = planHealthCheck(*routes, "grpc.reflection.v1alpha.ServerReflection");
  CHECK(plan.answer == health::HealthCheckResponse::SERVING);
  plan = planHealthCheck(*routes, "keel.machine.v1.MachineService");
  CHECK_FALSE(plan.answer);
  REQUIRE(plan.backend);
  CHECK(plan.backend->name == "machined");
  plan = planHealthCheck(*routes, "acme.nothing.v1.Nothing");
  REQUIRE(plan.refusal);
  CHECK(plan.refusal->error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(plan.refusal->error_message(), ContainsSubstring("acme.nothing.v1.Nothing"));
}

TEST_CASE("a backend that is down or slow is NOT_SERVING; any other failure names it") {
  health::HealthCheckResponse response;
  bool retire = false;
  CHECK(healthFromBackend(grpc::Status::OK, "timed", &response, &retire).ok());
  CHECK_FALSE(retire);
  for (const auto code : {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED}) {
    response.Clear();
    CHECK(healthFromBackend(grpc::Status(code, "x"), "timed", &response, &retire).ok());
    CHECK(response.status() == health::HealthCheckResponse::NOT_SERVING);
    CHECK(retire);
  }
  auto st = healthFromBackend(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), "timed", &response, &retire);
  CHECK(st.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  CHECK_THAT(st.error_message(), ContainsSubstring("backend timed does not serve grpc.health.v1"));
  st = healthFromBackend(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"), "timed", &response, &retire);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(st.error_message(), ContainsSubstring("backend timed"));
  CHECK_THAT(st.error_message(), ContainsSubstring("unknown service"));
}

TEST_CASE("reflection lists every routed service and nothing else") {
  refl::ServerReflectionRequest r;
  r.set_host("node-1");
  r.set_list_services("*");
  const auto out = reflectionAnswer(*nodeRoutes(), r);
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
  const auto out = reflectionAnswer(*nodeRoutes(), r);
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
  CHECK(reflectionAnswer(*nodeRoutes(), byName).file_descriptor_response().file_descriptor_proto_size() == 2);
  refl::ServerReflectionRequest method;
  method.set_file_containing_symbol("keel.machine.v1.MachineService.Version");
  CHECK(reflectionAnswer(*nodeRoutes(), method).has_file_descriptor_response());
}

TEST_CASE("reflection answers an unknown symbol or an empty request with an error, not a failed stream") {
  refl::ServerReflectionRequest r;
  r.set_file_containing_symbol("acme.secret.v1.Hidden");
  auto out = reflectionAnswer(*nodeRoutes(), r);
  CHECK(out.error_response().error_code() == static_cast<int>(grpc::StatusCode::NOT_FOUND));
  out = reflectionAnswer(*nodeRoutes(), refl::ServerReflectionRequest{});
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
