#include "keel/authz/proto_rules.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <functional>
#include <memory>
#include <set>

#include "keel/common/v1/common.pb.h"

namespace keel::authz {

namespace pb = google::protobuf;

namespace {

// The option's extension number in common.proto; also read from unknown fields so
// a descriptor set built without our generated code keeps its rules.
constexpr int kAllowedRolesField = 50301;

Result<std::vector<std::string>> rolesOf(const pb::MethodDescriptor& method) {
  std::vector<std::string> roles;
  const auto& options = method.options();
  for (int i = 0; i < options.ExtensionSize(keel::common::v1::allowed_roles); ++i) {
    roles.push_back(options.GetExtension(keel::common::v1::allowed_roles, i));
  }
  const auto& unknown = options.GetReflection()->GetUnknownFields(options);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const auto& f = unknown.field(i);
    if (f.number() == kAllowedRolesField && f.type() == pb::UnknownField::TYPE_LENGTH_DELIMITED) {
      roles.push_back(f.length_delimited());
    }
  }
  for (const auto& r : roles) {
    if (!isKnownRole(r)) {
      return invalidArgument("method " + method.full_name() + " allows unknown role '" + r + "'");
    }
  }
  return roles;
}

}  // namespace

Result<RuleTable> rulesFromService(const pb::ServiceDescriptor& service) {
  std::map<MethodName, std::vector<std::string>> rules;
  for (int i = 0; i < service.method_count(); ++i) {
    const auto* method = service.method(i);
    KEEL_ASSIGN_OR_RETURN(auto roles, rolesOf(*method));
    rules.emplace("/" + service.full_name() + "/" + method->name(), std::move(roles));
  }
  return RuleTable(std::move(rules));
}

Result<RuleTable> rulesFromPool(const pb::DescriptorPool& pool, const std::vector<std::string>& serviceNames) {
  RuleTable table;
  for (const auto& name : serviceNames) {
    const auto* service = pool.FindServiceByName(name);
    if (service == nullptr) return notFound("service " + name + " is not in the descriptor pool");
    KEEL_ASSIGN_OR_RETURN(auto rules, rulesFromService(*service));
    KEEL_RETURN_IF_ERROR(table.merge(rules));
  }
  return table;
}

Result<std::unique_ptr<pb::DescriptorPool>> poolFromDescriptorSet(std::string_view serialized) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return invalidArgument("not a serialized FileDescriptorSet");
  }
  auto pool = std::make_unique<pb::DescriptorPool>();
  // Imports the set omits but this binary knows (descriptor.proto, Keel's common.proto)
  // are taken from the generated pool, so a set built without --include_imports loads.
  std::set<std::string> inSet;
  for (const auto& file : set.file()) inSet.insert(file.name());
  std::function<void(const pb::FileDescriptor*)> addKnown = [&](const pb::FileDescriptor* fd) {
    if (inSet.count(fd->name()) != 0 || pool->FindFileByName(fd->name()) != nullptr) return;
    for (int i = 0; i < fd->dependency_count(); ++i) addKnown(fd->dependency(i));
    pb::FileDescriptorProto proto;
    fd->CopyTo(&proto);
    pool->BuildFile(proto);
  };
  for (const auto& file : set.file()) {
    for (const auto& dep : file.dependency()) {
      if (inSet.count(dep) != 0) continue;
      if (const auto* known = pb::DescriptorPool::generated_pool()->FindFileByName(dep)) addKnown(known);
    }
  }
  for (const auto& file : set.file()) {
    if (pool->BuildFile(file) == nullptr) {
      return invalidArgument("descriptor set file " + file.name() +
                             " does not build (missing imports? use protoc --include_imports)");
    }
  }
  return pool;
}

Result<RuleTable> rulesFromDescriptorSet(std::string_view serialized) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return invalidArgument("not a serialized FileDescriptorSet");
  }
  KEEL_ASSIGN_OR_RETURN(const auto pool, poolFromDescriptorSet(serialized));
  RuleTable table;
  for (const auto& file : set.file()) {
    const auto* fd = pool->FindFileByName(file.name());
    KEEL_RELEASE_ASSERT(fd != nullptr, "a file just built is missing from its pool");
    for (int i = 0; i < fd->service_count(); ++i) {
      KEEL_ASSIGN_OR_RETURN(auto rules, rulesFromService(*fd->service(i)));
      KEEL_RETURN_IF_ERROR(table.merge(rules));
    }
  }
  return table;
}

}  // namespace keel::authz
