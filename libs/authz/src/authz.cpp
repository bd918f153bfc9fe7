#include "keel/authz/authz.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include "keel/common/text.h"

namespace keel::authz {

const std::vector<std::string>& knownRoles() {
  static const std::vector<std::string> kRoles = {std::string(kRoleAdmin), std::string(kRoleOperator),
                                                  std::string(kRoleReader), std::string(kRoleImpersonator)};
  return kRoles;
}

bool isKnownRole(std::string_view role) {
  const auto& roles = knownRoles();
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

namespace {

std::vector<std::string> sortedKnown(std::vector<std::string> roles) {
  std::erase_if(roles, [](const std::string& r) { return !isKnownRole(r); });
  std::sort(roles.begin(), roles.end());
  roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
  return roles;
}

std::string joinRoles(const std::vector<std::string>& roles) {
  std::string out;
  for (const auto& r : roles) {
    if (!out.empty()) out += ", ";
    out += r;
  }
  return out;
}

}  // namespace

std::vector<std::string> rolesFromOrganizations(const std::vector<std::string>& organizations) {
  return sortedKnown(organizations);
}

std::string formatRoles(const std::vector<std::string>& roles) {
  std::string out;
  for (const auto& r : sortedKnown(roles)) {
    if (!out.empty()) out += ',';
    out += r;
  }
  return out;
}

std::vector<std::string> parseRoles(std::string_view header) {
  std::vector<std::string> roles;
  while (!header.empty()) {
    const auto comma = header.find(',');
    roles.emplace_back(trim(header.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return sortedKnown(std::move(roles));
}

std::string formatCertValidity(const CertValidity& validity) {
  const auto unixSeconds = [](TimePoint t) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
  };
  return unixSeconds(validity.notBefore) + "," + unixSeconds(validity.notAfter);
}

Result<CertValidity> parseCertValidity(std::string_view value) {
  const auto expected = [&] {
    return invalidArgument(
        "expected " + std::string(kCertValidityKey) +
        " as '<notBefore>,<notAfter>' in Unix seconds, the second after the first, found '" +
        std::string(value.substr(0, 64)) + "'");
  };
  const auto comma = value.find(',');
  if (comma == std::string_view::npos) return expected();
  const auto number = [](std::string_view text, int64_t& out) {
    const auto* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, out);
    return !text.empty() && r.ec == std::errc() && r.ptr == end;
  };
  int64_t from = 0;
  int64_t until = 0;
  if (!number(value.substr(0, comma), from) || !number(value.substr(comma + 1), until) || until <= from)
    return expected();
  // Beyond the year 9999 (X.509's last representable time) is not a certificate's time.
  constexpr int64_t kLast = 253402300799;
  if (from < -kLast || until > kLast) return expected();
  return CertValidity{TimePoint(std::chrono::seconds(from)), TimePoint(std::chrono::seconds(until))};
}

bool isReservedKey(std::string_view key) {
  if (key.size() < kReservedPrefix.size()) return false;
  for (size_t i = 0; i < kReservedPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(key[i])) != kReservedPrefix[i]) return false;
  }
  return true;
}

Status RuleTable::check(std::string_view method, const std::vector<std::string>& roles) const {
  const auto it = rules_.find(std::string(method));
  if (it == rules_.end()) {
    return {StatusCode::kUnimplemented, "unknown method " + std::string(method)};
  }
  const auto& allowed = it->second;
  for (const auto& role : roles) {
    if (std::find(allowed.begin(), allowed.end(), role) != allowed.end()) return Status::ok();
  }
  const auto held = sortedKnown(roles);
  std::string msg = std::string(method);
  if (allowed.empty()) {
    msg += " has no authorization rule and is refused to everyone";
  } else {
    msg += " requires one of the roles " + joinRoles(allowed);
  }
  msg += held.empty() ? "; the caller holds no known role" : "; the caller holds " + joinRoles(held);
  return permissionDenied(std::move(msg));
}

Status RuleTable::merge(const RuleTable& other) {
  for (const auto& [method, roles] : other.rules_) {
    if (rules_.count(method) != 0) return alreadyExists("a rule for " + method + " is defined twice");
  }
  for (const auto& [method, roles] : other.rules_) rules_.emplace(method, roles);
  return Status::ok();
}

Status RuleTable::requireRuleForEveryMethod() const {
  for (const auto& [method, roles] : rules_) {
    if (roles.empty()) return failedPrecondition("method " + method + " has no keel.common.v1.allowed_roles rule");
  }
  return Status::ok();
}

}  // namespace keel::authz

namespace keel::authz {

Status checkForwardedCall(const RuleTable& rules, std::string_view method,
                          const std::vector<std::string>& rolesValues) {
  if (rolesValues.empty()) {
    return permissionDenied("call to " + std::string(method) +
                            " carries no keel-roles metadata; backends accept calls only through apid");
  }
  if (rolesValues.size() > 1) {
    return permissionDenied("call to " + std::string(method) + " carries keel-roles " +
                            std::to_string(rolesValues.size()) + " times; expected exactly once");
  }
  return rules.check(method, parseRoles(rolesValues.front()));
}

}  // namespace keel::authz
