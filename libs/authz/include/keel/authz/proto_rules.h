// Compiles a RuleTable from protobuf service descriptors: the only part of the
// authorization library that knows about protobuf.
#pragma once

#include <memory>
#include <string_view>

#include "keel/authz/authz.h"
#include "keel/common/status.h"

namespace google::protobuf {
class DescriptorPool;
class ServiceDescriptor;
}  // namespace google::protobuf

namespace keel::authz {

// Rules of every method of `service`. A method without `allowed_roles` gets an empty
// rule (denied to everyone); a rule naming an unknown role is an error.
Result<RuleTable> rulesFromService(const google::protobuf::ServiceDescriptor& service);

// Rules of the named services, looked up in `pool`; NOT_FOUND for a missing service.
Result<RuleTable> rulesFromPool(const google::protobuf::DescriptorPool& pool,
                                const std::vector<std::string>& serviceNames);

// Rules of every service of a serialized FileDescriptorSet (`protoc --include_imports
// --descriptor_set_out`), the form an extension backend ships its rules in.
Result<RuleTable> rulesFromDescriptorSet(std::string_view serialized);

// The pool of every file of a serialized FileDescriptorSet (imports it omits but this
// binary knows are taken from the generated pool). Errors: INVALID_ARGUMENT.
Result<std::unique_ptr<google::protobuf::DescriptorPool>> poolFromDescriptorSet(std::string_view serialized);

}  // namespace keel::authz
