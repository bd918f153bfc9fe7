#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/authz/authz.h"
#include "keel/authz/proto_rules.h"
#include "keel/common/v1/common.pb.h"

namespace keel::authz {
namespace {

namespace pb = google::protobuf;
using Catch::Matchers::ContainsSubstring;

const std::string kVersion = "/keel.machine.v1.MachineService/Version";

pb::FileDescriptorSet toySet(bool withRule, const std::string& role) {
  pb::FileDescriptorSet set;
  keel::common::v1::Empty::descriptor()->file()->CopyTo(set.add_file());
  pb::FileDescriptorProto* file = set.add_file();
  file->set_name("toy/v1/toy.proto");
  file->set_package("toy.v1");
  file->set_syntax("proto3");
  file->add_dependency("keel/common/v1/common.proto");
  auto* service = file->add_service();
  service->set_name("ToyService");
  auto* ruled = service->add_method();
  ruled->set_name("Ruled");
  ruled->set_input_type(".keel.common.v1.Empty");
  ruled->set_output_type(".keel.common.v1.Empty");
  if (withRule) ruled->mutable_options()->AddExtension(keel::common::v1::allowed_roles, role);
  auto* bare = service->add_method();
  bare->set_name("Bare");
  bare->set_input_type(".keel.common.v1.Empty");
  bare->set_output_type(".keel.common.v1.Empty");
  return set;
}

TEST_CASE("a backend's descriptor set yields its rules, and a method without a rule is refused to everyone",
          "[authz]") {
  // The set includes common.proto itself, as `protoc --include_imports` writes it.
  auto table = rulesFromDescriptorSet(toySet(true, "os:operator").SerializeAsString());
  REQUIRE(table.ok());
  CHECK(table->check("/toy.v1.ToyService/Ruled", {"os:operator"}).isOk());
  CHECK(table->check("/toy.v1.ToyService/Ruled", {"os:reader"}).code() == StatusCode::kPermissionDenied);
  const auto bare = table->check("/toy.v1.ToyService/Bare", {"os:admin"});
  CHECK(bare.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(bare.message(), ContainsSubstring("no authorization rule"));
}

TEST_CASE("a rule naming an unknown role is rejected when the rules are loaded", "[authz]") {
  auto table = rulesFromDescriptorSet(toySet(true, "os:root").SerializeAsString());
  REQUIRE_FALSE(table.ok());
  CHECK_THAT(table.status().message(), ContainsSubstring("unknown role 'os:root'"));
}

TEST_CASE("garbage instead of a descriptor set is an error, not a crash", "[authz]") {
  const auto garbage = rulesFromDescriptorSet("\xff\xff\xff garbage");
  REQUIRE_FALSE(garbage.ok());
  CHECK(garbage.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(garbage.status().message(), ContainsSubstring("not a serialized FileDescriptorSet"));
}

TEST_CASE("two tables defining the same method do not merge", "[authz]") {
  using Rules = std::map<MethodName, std::vector<std::string>>;
  RuleTable a(Rules{{kVersion, {"os:admin"}}});
  CHECK(a.merge(RuleTable(Rules{{kVersion, {"os:reader"}}})).code() == StatusCode::kAlreadyExists);
  CHECK(a.check(kVersion, {"os:reader"}).code() == StatusCode::kPermissionDenied);
}

TEST_CASE("reserved metadata keys are recognised in any letter case", "[authz]") {
  CHECK(isReservedKey("keel-roles"));
  CHECK(isReservedKey("Keel-Roles"));
  CHECK(isReservedKey("KEEL-anything"));
  CHECK_FALSE(isReservedKey("keel"));
  CHECK_FALSE(isReservedKey("nodes"));
}

TEST_CASE(
    "a certificate's validity survives apid's formatting and trustd's parsing; anything else is refused",
    "[authz]") {
  const CertValidity v{TimePoint(std::chrono::seconds(1893456000)),
                       TimePoint(std::chrono::seconds(1893459900))};
  CHECK(formatCertValidity(v) == "1893456000,1893459900");
  auto back = parseCertValidity(formatCertValidity(v));
  REQUIRE(back.ok());
  CHECK(*back == v);
  for (const char* bad : {"", ",", "1893456000", "1893456000,", ",1893459900", "1893459900,1893456000",
                          "1893456000,1893456000", "1893456000,1893459900,5", " 1893456000,1893459900",
                          "1893456000,1893459900x", "a,b", "0,99999999999999"}) {
    INFO("'" << bad << "'");
    auto r = parseCertValidity(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), ContainsSubstring("expected keel-cert-validity as"));
  }
}

TEST_CASE("roles from certificate organizations and headers keep only known roles, sorted, once", "[authz]") {
  CHECK(rolesFromOrganizations({"os:reader", "kubernetes", "os:admin", "os:reader"}) ==
        std::vector<std::string>{"os:admin", "os:reader"});
  CHECK(parseRoles(" os:operator ,bogus,,os:admin") == std::vector<std::string>{"os:admin", "os:operator"});
  CHECK(formatRoles({"os:reader", "os:admin", "x"}) == "os:admin,os:reader");
  CHECK(parseRoles("").empty());
}

}  // namespace
}  // namespace keel::authz

namespace keel::authz {
namespace {

}  // namespace
}  // namespace keel::authz

TEST_CASE("a table is complete only when every method has a rule, and the first one without is named") {
  using keel::authz::RuleTable;
  using Rules = std::map<std::string, std::vector<std::string>>;
  CHECK(RuleTable(Rules{{"/a.S/Get", {"os:reader"}}}).requireRuleForEveryMethod().isOk());
  const auto st = RuleTable(Rules{{"/a.S/Get", {"os:reader"}}, {"/a.S/Put", {}}}).requireRuleForEveryMethod();
  CHECK(st.code() == keel::StatusCode::kFailedPrecondition);
  CHECK(st.message() == "method /a.S/Put has no keel.common.v1.allowed_roles rule");
}
