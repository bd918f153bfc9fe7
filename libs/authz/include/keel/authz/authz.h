// Role-based authorization shared by apid and every backend: the known roles, the
// reserved metadata keys, and the rule table compiled from the `allowed_roles`
// method options of the .proto files. One library, so both checks are the same check.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"

namespace keel::authz {

inline constexpr std::string_view kRoleAdmin = "os:admin";
inline constexpr std::string_view kRoleOperator = "os:operator";
inline constexpr std::string_view kRoleReader = "os:reader";
inline constexpr std::string_view kRoleImpersonator = "os:impersonator";

// Metadata keys apid sets on a forwarded call. Every key with the reserved prefix
// that a client sends is dropped before anything else happens.
inline constexpr std::string_view kReservedPrefix = "keel-";
inline constexpr std::string_view kRolesKey = "keel-roles";
inline constexpr std::string_view kIdentityKey = "keel-identity";
inline constexpr std::string_view kPeerKey = "keel-peer";
inline constexpr std::string_view kRequestIdKey = "keel-request-id";
// Set by apid on a call to its own node's backend when the caller presented its own
// certificate to it; absent when another node's apid forwarded the call (os:impersonator).
inline constexpr std::string_view kCertValidityKey = "keel-cert-validity";

// The validity of the leaf certificate a caller presented to apid. apid writes it with
// formatCertValidity ("<notBefore>,<notAfter>" in Unix seconds); trustd reads it back.
struct CertValidity {
  TimePoint notBefore;
  TimePoint notAfter;
  bool operator==(const CertValidity&) const = default;
};
std::string formatCertValidity(const CertValidity& validity);
// Errors: INVALID_ARGUMENT unless `value` is two Unix times, the second after the first.
Result<CertValidity> parseCertValidity(std::string_view value);

// The four roles in a stable order.
const std::vector<std::string>& knownRoles();
bool isKnownRole(std::string_view role);

// The known roles among `organizations` (a certificate's O= entries), sorted and
// without duplicates. Unknown entries are ignored.
std::vector<std::string> rolesFromOrganizations(const std::vector<std::string>& organizations);

// `keel-roles` value: roles joined by ','. Parsing ignores unknown roles and spaces.
std::string formatRoles(const std::vector<std::string>& roles);
std::vector<std::string> parseRoles(std::string_view header);

// True when the metadata key is reserved (case-insensitive: HTTP/2 keys are lower-case,
// but a client library may send any case).
bool isReservedKey(std::string_view key);

// Full method name as gRPC spells it: "/keel.machine.v1.MachineService/Version".
using MethodName = std::string;

// Maps each method to the roles allowed to call it. Immutable once built; safe to
// share between threads.
class RuleTable {
 public:
  RuleTable() = default;
  explicit RuleTable(std::map<MethodName, std::vector<std::string>> rules) : rules_(std::move(rules)) {}

  // OK when one of `roles` is allowed to call `method`. Otherwise:
  // UNIMPLEMENTED for a method the table does not know, PERMISSION_DENIED naming the
  // roles that would have been needed (a method with an empty rule denies everyone).
  Status check(std::string_view method, const std::vector<std::string>& roles) const;

  bool knows(std::string_view method) const { return rules_.find(std::string(method)) != rules_.end(); }
  const std::map<MethodName, std::vector<std::string>>& rules() const { return rules_; }

  // Adds another table's rules. Fails with ALREADY_EXISTS when a method is in both.
  Status merge(const RuleTable& other);

  // OK when every method has a non-empty rule. Otherwise FAILED_PRECONDITION naming the
  // first method without one: a backend that serves it is not accepted (by machined,
  // apid, or the backend itself), since nobody could ever call it.
  Status requireRuleForEveryMethod() const;

 private:
  std::map<MethodName, std::vector<std::string>> rules_;
};

}  // namespace keel::authz

namespace keel::authz {

// The backend side of the check (defence in depth): `rolesValues` are all values of
// `keel-roles` that reached the backend. None, or more than one, is refused
// (PERMISSION_DENIED): only apid sets that key, exactly once.
Status checkForwardedCall(const RuleTable& rules, std::string_view method,
                          const std::vector<std::string>& rolesValues);

}  // namespace keel::authz
