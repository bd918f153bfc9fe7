#include "keel/backend/authorize.h"

#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include "keel/authz/proto_rules.h"
#include "keel/transport/grpc_status.h"

namespace keel::backend {

std::vector<std::string> forwardedRoles(const grpc::ServerContext& context) {
  std::vector<std::string> roles;
  // gRPC hands metadata keys over lower-cased, as HTTP/2 sends them.
  const auto range = context.client_metadata().equal_range(grpc::string_ref(authz::kRolesKey.data(), authz::kRolesKey.size()));
  for (auto it = range.first; it != range.second; ++it) roles.emplace_back(it->second.data(), it->second.size());
  return roles;
}

namespace {

const google::protobuf::ServiceDescriptor* linkedService(const std::string& name) {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
}

// The rules of `service`'s methods out of a larger table.
Result<authz::RuleTable> rulesOf(const google::protobuf::ServiceDescriptor& service, const authz::RuleTable& table) {
  std::map<authz::MethodName, std::vector<std::string>> rules;
  for (int i = 0; i < service.method_count(); ++i) {
    const std::string method = "/" + service.full_name() + "/" + service.method(i)->name();
    const auto it = table.rules().find(method);
    if (it == table.rules().end()) return failedPrecondition("method " + method + " has no rule in the given table");
    rules.emplace(method, it->second);
  }
  return authz::RuleTable(std::move(rules));
}

}  // namespace

ServiceRules::ServiceRules(std::string_view serviceFullName) : service_(serviceFullName) {
  const auto* descriptor = linkedService(service_);
  if (descriptor == nullptr) {
    status_ = notFound("service " + service_ + " is not linked into this program");
    return;
  }
  setTable(authz::rulesFromService(*descriptor));
}

ServiceRules::ServiceRules(std::string_view serviceFullName, const authz::RuleTable& table) : service_(serviceFullName) {
  const auto* descriptor = linkedService(service_);
  if (descriptor == nullptr) {
    status_ = notFound("service " + service_ + " is not linked into this program");
    return;
  }
  setTable(rulesOf(*descriptor, table));
}

void ServiceRules::setTable(Result<authz::RuleTable> table) {
  if (!table.ok()) {
    status_ = table.status();
    return;
  }
  if (const Status ruled = table->requireRuleForEveryMethod(); !ruled.isOk()) {
    status_ = failedPrecondition(ruled.message() + ": nobody could call it");
    return;
  }
  table_ = std::move(table).value();
}

grpc::Status ServiceRules::check(const grpc::ServerContext& context, std::string_view handler) const {
  const std::string method = "/" + service_ + "/" + std::string(handler);
  Status verdict = status_;
  if (verdict.isOk()) verdict = authz::checkForwardedCall(table_, method, forwardedRoles(context));
  if (!verdict.isOk()) spdlog::warn("refused {} from {}: {}", method, context.peer(), verdict.message());
  return transport::toGrpc(verdict);
}

grpc::Status ServiceRules::checkIfForwarded(const grpc::ServerContext& context, std::string_view handler) const {
  const auto range = context.client_metadata().equal_range(grpc::string_ref(authz::kRolesKey.data(), authz::kRolesKey.size()));
  if (range.first == range.second && status_.isOk()) return grpc::Status::OK;
  return check(context, handler);
}

}  // namespace keel::backend
