// The built-in APIs' rules as a caller meets them: every method has one, admin passes
// and an impersonator alone does not, and a denial says what was needed.
#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/apis/builtin.h"
#include "keel/authz/authz.h"

namespace keel::apis {
namespace {

using namespace keel::authz;
using Catch::Matchers::ContainsSubstring;

const std::string kVersion = "/keel.machine.v1.MachineService/Version";
const std::string kServiceStart = "/keel.machine.v1.MachineService/ServiceStart";
const std::string kRead = "/keel.machine.v1.MachineService/Read";

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_CASE("every method of every built-in service has a rule that admin passes and impersonator alone does not",
          "[authz]") {
  const auto& table = builtinRules();
  int methods = 0;
  {
    for (const auto* service : builtinServiceDescriptors()) {
      for (int m = 0; m < service->method_count(); ++m) {
        const std::string name = "/" + service->full_name() + "/" + service->method(m)->name();
        INFO(name);
        REQUIRE(table.knows(name));
        const auto& roles = table.rules().at(name);
        CHECK_FALSE(roles.empty());
        CHECK(contains(roles, kRoleAdmin));
        CHECK_FALSE(contains(roles, kRoleImpersonator));
        CHECK(table.check(name, {std::string(kRoleAdmin)}).isOk());
        CHECK(table.check(name, {std::string(kRoleImpersonator)}).code() == StatusCode::kPermissionDenied);
        ++methods;
      }
    }
  }
  CHECK(methods == static_cast<int>(table.rules().size()));
  CHECK(methods > 20);
}

TEST_CASE("a denial names the roles that would have been needed and those the caller holds", "[authz]") {
  const auto status = builtinRules().check(kServiceStart, {"os:reader"});
  CHECK(status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(status.message(), ContainsSubstring("requires one of the roles os:admin, os:operator"));
  CHECK_THAT(status.message(), ContainsSubstring("the caller holds os:reader"));
}

TEST_CASE("reader may read, operator may start services, only admin may read files", "[authz]") {
  const auto& t = builtinRules();
  CHECK(t.check(kVersion, {"os:reader"}).isOk());
  CHECK(t.check(kServiceStart, {"os:operator"}).isOk());
  CHECK(t.check(kRead, {"os:operator"}).code() == StatusCode::kPermissionDenied);
  CHECK(t.check(kRead, {"os:admin"}).isOk());
}

TEST_CASE("no known role means nothing is allowed", "[authz]") {
  const auto status = builtinRules().check(kVersion, {"system:masters", "admin", "OS:ADMIN"});
  CHECK(status.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(status.message(), ContainsSubstring("holds no known role"));
  CHECK(builtinRules().check(kVersion, {}).code() == StatusCode::kPermissionDenied);
}

TEST_CASE("an unknown method is refused as unimplemented", "[authz]") {
  CHECK(builtinRules().check("/keel.machine.v1.MachineService/Nope", {"os:admin"}).code() ==
        StatusCode::kUnimplemented);
  CHECK(builtinRules().check("", {"os:admin"}).code() == StatusCode::kUnimplemented);
}

TEST_CASE("a backend refuses a call without keel-roles, or with it twice", "[authz]") {
  const auto& t = builtinRules();
  const std::string version = "/keel.machine.v1.MachineService/Version";
  CHECK(checkForwardedCall(t, version, {}).code() == StatusCode::kPermissionDenied);
  CHECK(checkForwardedCall(t, version, {"os:reader", "os:admin"}).code() == StatusCode::kPermissionDenied);
  CHECK(checkForwardedCall(t, version, {"os:reader"}).isOk());
  CHECK(checkForwardedCall(t, "/keel.machine.v1.MachineService/Reset", {"os:operator"}).code() ==
        StatusCode::kPermissionDenied);
}

TEST_CASE("the built-in service names are those of the generated code, each once", "[apis]") {
  const auto& names = builtinServiceNames();
  CHECK(contains(names, kMachineService));
  CHECK(contains(names, "keel.security.v1.SecurityService"));
  CHECK(contains(names, "grpc.health.v1.Health"));
  for (const auto* service : builtinServiceDescriptors()) CHECK(contains(names, service->full_name()));
  auto sorted = names;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
}

}  // namespace
}  // namespace keel::apis
