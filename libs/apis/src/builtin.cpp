#include "keel/apis/builtin.h"

#include <google/protobuf/descriptor.h>

#include "keel/authz/proto_rules.h"
#include "keel/common/assert.h"
#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/security/v1/security.grpc.pb.h"

namespace keel::apis {

namespace pb = google::protobuf;

const char* const kMachineService = keel::machine::v1::MachineService::service_full_name();
const char* const kSecurityService = keel::security::v1::SecurityService::service_full_name();
const char* const kLocalIssuerService = keel::security::v1::LocalIssuerService::service_full_name();
// apid serves these two itself; their generated code is not linked here (reflection's
// may be registered once per process, and machined and trustd do not need it).
const char* const kHealthService = "grpc.health.v1.Health";
const char* const kReflectionService = "grpc.reflection.v1alpha.ServerReflection";

const std::vector<std::string>& builtinServiceNames() {
  static const std::vector<std::string> kNames = {kMachineService, kSecurityService, kLocalIssuerService,
                                                  kHealthService, kReflectionService};
  return kNames;
}

std::vector<const pb::ServiceDescriptor*> builtinServiceDescriptors() {
  // One message of each built-in API file; referencing it also links the file in.
  const std::vector<const pb::FileDescriptor*> files = {
      keel::machine::v1::VersionResponse::descriptor()->file(),
      keel::security::v1::SignNodeCertificateRequest::descriptor()->file(),
  };
  std::vector<const pb::ServiceDescriptor*> services;
  for (const auto* file : files) {
    for (int i = 0; i < file->service_count(); ++i) services.push_back(file->service(i));
  }
  return services;
}

const authz::RuleTable& builtinRules() {
  static const authz::RuleTable kTable = [] {
    authz::RuleTable table;
    for (const auto* service : builtinServiceDescriptors()) {
      auto rules = authz::rulesFromService(*service);
      KEEL_RELEASE_ASSERT(rules.ok(), "built-in authorization rules are invalid: " + rules.status().toString());
      KEEL_RELEASE_ASSERT(table.merge(*rules).isOk(), "a built-in method is defined twice");
    }
    return table;
  }();
  return kTable;
}

}  // namespace keel::apis
