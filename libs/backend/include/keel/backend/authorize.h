// The backend's half of authorization (defence in depth): every call a backend serves must
// carry the roles apid forwarded, in exactly one `keel-roles` value, and they must pass the
// method's rule, compiled from the same `allowed_roles` options of the service's .proto
// that apid checks (libs/authz). A local process that is not apid cannot claim a role.
//
// A service implementation derives from AuthorizedService<Api> (Api: the generated
// service class, e.g. keel::time::v1::TimeService) and starts every handler with
// KEEL_AUTHORIZE(context). The rule is the one of the method the handler serves, named by
// the handler itself (__func__), so a handler cannot check the wrong rule.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/server_context.h>

#include "keel/authz/authz.h"
#include "keel/common/status.h"

namespace keel::backend {

// Every value of `keel-roles` the call carries (none or several are refused by the check).
std::vector<std::string> forwardedRoles(const grpc::ServerContext& context);

// The rules of one service, from the descriptors linked into the process.
class ServiceRules {
 public:
  // `serviceFullName` as in the .proto ("keel.time.v1.TimeService"). A service that is not
  // linked in, or a method without an `allowed_roles` rule, leaves status() an error
  // naming it: a daemon refuses to serve such a service.
  explicit ServiceRules(std::string_view serviceFullName);

  const std::string& serviceName() const { return service_; }
  const Status& status() const { return status_; }
  const authz::RuleTable& table() const { return table_; }

  // OK when the call's forwarded roles pass the rule of `/<service>/<handler>`. Refusals
  // are PERMISSION_DENIED (UNIMPLEMENTED for a handler the service does not have) and
  // are logged with the peer.
  grpc::Status check(const grpc::ServerContext& context, std::string_view handler) const;

 private:
  std::string service_;
  Status status_;
  authz::RuleTable table_;
};

template <typename Api>
class AuthorizedService : public Api::Service {
 public:
  const ServiceRules& rules() const { return rules_; }

 protected:
  AuthorizedService() : rules_(Api::service_full_name()) {}
  grpc::Status authorize(grpc::ServerContext* context, std::string_view handler) const {
    return rules_.check(*context, handler);
  }

 private:
  ServiceRules rules_;
};

}  // namespace keel::backend

// The first statement of every handler of an AuthorizedService.
#define KEEL_AUTHORIZE(context)                                       \
  do {                                                                \
    const ::grpc::Status keel_authz_ = this->authorize(context, __func__); \
    if (!keel_authz_.ok()) return keel_authz_;                        \
  } while (false)
