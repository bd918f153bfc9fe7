// The backend's half of authorization (defence in depth): every call a backend serves must
// carry the roles apid forwarded, in exactly one `keel-roles` value, and they must pass the
// method's rule, compiled from the same `allowed_roles` options of the service's .proto
// that apid checks (libs/authz). A local process that is not apid cannot claim a role.
//
// A service implementation derives from AuthorizedService<Api> (Api: the generated
// service class, e.g. keel::time::v1::TimeService) and starts every handler with
// KEEL_AUTHORIZE(context). The rule is the one of the method the handler serves, named by
// the handler itself (__func__), so a handler cannot check the wrong rule. A method the
// backend also serves to its direct peer (apid calling for itself, or its join listener,
// with a credential the handler checks) starts with KEEL_AUTHORIZE_IF_FORWARDED instead.
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
  // The same, with the rules taken from `table` (a node's built-in rules, keel/apis), which
  // must hold one for every method of the linked service.
  ServiceRules(std::string_view serviceFullName, const authz::RuleTable& table);

  const std::string& serviceName() const { return service_; }
  const Status& status() const { return status_; }
  const authz::RuleTable& table() const { return table_; }

  // OK when the call's forwarded roles pass the rule of `/<service>/<handler>`. Refusals
  // are PERMISSION_DENIED (UNIMPLEMENTED for a handler the service does not have) and
  // are logged with the peer.
  grpc::Status check(const grpc::ServerContext& context, std::string_view handler) const;
  // As check() for a call that carries `keel-roles`. A call that carries none did not come
  // from a client through apid's API but from the socket's allowed peer itself: it is
  // admitted, and the handler checks the credential such a call brings.
  grpc::Status checkIfForwarded(const grpc::ServerContext& context, std::string_view handler) const;

 private:
  void setTable(Result<authz::RuleTable> table);

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
  explicit AuthorizedService(const authz::RuleTable& table) : rules_(Api::service_full_name(), table) {}
  grpc::Status authorize(grpc::ServerContext* context, std::string_view handler) const {
    return rules_.check(*context, handler);
  }
  grpc::Status authorizeIfForwarded(grpc::ServerContext* context, std::string_view handler) const {
    return rules_.checkIfForwarded(*context, handler);
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

// The first statement of a handler whose method the backend also serves to its direct peer
// (ServiceRules::checkIfForwarded).
#define KEEL_AUTHORIZE_IF_FORWARDED(context)                                         \
  do {                                                                              \
    const ::grpc::Status keel_authz_ = this->authorizeIfForwarded(context, __func__); \
    if (!keel_authz_.ok()) return keel_authz_;                                      \
  } while (false)
