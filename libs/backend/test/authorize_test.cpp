#include <catch2/catch_test_macros.hpp>
#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "keel/authz/proto_rules.h"
#include "keel/backend/authorize.h"
#include "keel/backend/daemon.h"
#include "keel/machine/v1/machine.grpc.pb.h"

namespace mv1 = keel::machine::v1;

namespace {

// A service built on the SDK: Version for every role, Reboot for admins only.
class Machine final : public keel::backend::AuthorizedService<mv1::MachineService> {
 public:
  grpc::Status Version(grpc::ServerContext* context, const keel::common::v1::Empty*, mv1::VersionResponse* out) override {
    KEEL_AUTHORIZE(context);
    out->add_messages()->set_version("1");
    return grpc::Status::OK;
  }
  grpc::Status Reboot(grpc::ServerContext* context, const keel::common::v1::Empty*, mv1::PowerResponse*) override {
    KEEL_AUTHORIZE(context);
    return grpc::Status::OK;
  }
};

// The same API with its rules from a table handed over (as trustd hands over the node's
// built-in rules); Version also serves the socket's peer calling without roles.
class TabledMachine final : public keel::backend::AuthorizedService<mv1::MachineService> {
 public:
  explicit TabledMachine(const keel::authz::RuleTable& table) : AuthorizedService(table) {}
  grpc::Status Version(grpc::ServerContext* context, const keel::common::v1::Empty*, mv1::VersionResponse*) override {
    KEEL_AUTHORIZE_IF_FORWARDED(context);
    return grpc::Status::OK;
  }
  grpc::Status Reboot(grpc::ServerContext* context, const keel::common::v1::Empty*, mv1::PowerResponse*) override {
    KEEL_AUTHORIZE(context);
    return grpc::Status::OK;
  }
};

// The machine API's rules from its .proto, with Version for admins only.
keel::authz::RuleTable adminOnlyVersion() {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(mv1::MachineService::service_full_name());
  REQUIRE(service != nullptr);
  auto table = keel::authz::rulesFromService(*service);
  REQUIRE(table.ok());
  auto rules = table->rules();
  rules.at("/keel.machine.v1.MachineService/Version") = {"os:admin"};
  return keel::authz::RuleTable(std::move(rules));
}

grpc::Status call(mv1::MachineService::Stub& stub, bool reboot, const std::vector<std::string>& roles) {
  grpc::ClientContext ctx;
  for (const auto& r : roles) ctx.AddMetadata("keel-roles", r);
  if (reboot) {
    mv1::PowerResponse out;
    return stub.Reboot(&ctx, {}, &out);
  }
  mv1::VersionResponse out;
  return stub.Version(&ctx, {}, &out);
}

}  // namespace

TEST_CASE("an authorized service re-checks the forwarded roles against its .proto rules") {
  Machine service;
  REQUIRE(service.rules().status().isOk());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = mv1::MachineService::NewStub(server->InProcessChannel({}));

  CHECK(call(*stub, false, {"os:reader"}).ok());
  CHECK(call(*stub, false, {"os:admin,os:reader"}).ok());
  CHECK(call(*stub, true, {"os:admin"}).ok());
  const auto denied = call(*stub, true, {"os:reader"});
  CHECK(denied.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(denied.error_message().find("os:admin") != std::string::npos);
  CHECK(call(*stub, false, {}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(call(*stub, false, {"os:reader", "os:reader"}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(call(*stub, false, {"os:impersonator"}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  server->Shutdown();
}

TEST_CASE("a service checks the rules of the table it is given, and one missing a method cannot be served") {
  TabledMachine service(adminOnlyVersion());
  REQUIRE(service.rules().status().isOk());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = mv1::MachineService::NewStub(server->InProcessChannel({}));
  CHECK(call(*stub, false, {"os:reader"}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(call(*stub, false, {"os:admin"}).ok());
  server->Shutdown();

  auto rules = adminOnlyVersion().rules();
  rules.erase("/keel.machine.v1.MachineService/Reboot");
  TabledMachine missing{keel::authz::RuleTable(rules)};
  CHECK(missing.rules().status().code() == keel::StatusCode::kFailedPrecondition);
  CHECK(missing.rules().status().message().find("Reboot") != std::string::npos);
}

TEST_CASE("a method also served to the socket's peer admits a call without roles, and checks one with roles") {
  TabledMachine service(adminOnlyVersion());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = mv1::MachineService::NewStub(server->InProcessChannel({}));
  CHECK(call(*stub, false, {}).ok());
  CHECK(call(*stub, false, {"os:admin"}).ok());
  CHECK(call(*stub, false, {"os:reader"}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(call(*stub, false, {"os:admin", "os:admin"}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // Only where the handler says so: Reboot without roles is refused.
  CHECK(call(*stub, true, {}).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  server->Shutdown();
}

TEST_CASE("a service that is not linked in cannot be served") {
  keel::backend::ServiceRules rules("keel.nothing.v1.Missing");
  CHECK(rules.status().code() == keel::StatusCode::kNotFound);
}

TEST_CASE("the peer policy admits only the listed uids and names the refused one") {
  CHECK(keel::backend::checkPeerUid(101, 7, {101, 0}, "timed").isOk());
  const auto refused = keel::backend::checkPeerUid(1000, 7, {101}, "timed");
  CHECK(refused.code() == keel::StatusCode::kPermissionDenied);
  CHECK(refused.message().find("uid 1000") != std::string::npos);
}
