#include "keel/contracts/route_entry.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "keel/config/json_fields.h"

namespace keel::contracts {

namespace {

using config::fieldError;
using config::ObjectReader;

}  // namespace

Result<RouteEntry> parseRouteEntry(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, config::parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto r, ObjectReader::open(json, ""));
  RouteEntry m;
  KEEL_ASSIGN_OR_RETURN(m.name, r.requiredString("name"));
  if (m.name.empty() || m.name.size() > 63 ||
      !std::all_of(m.name.begin(), m.name.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
               c == '-' || c == '_' || c == '.';
      })) {
    return fieldError("name", "expected 1-63 characters of [a-z0-9._-], found '" + m.name + "'");
  }
  KEEL_ASSIGN_OR_RETURN(const std::string socket, r.requiredString("socket"));
  if (socket.empty() || socket.front() != '/') return fieldError("socket", "expected an absolute path, found '" + socket + "'");
  m.socket = socket;
  KEEL_ASSIGN_OR_RETURN(m.services, r.stringArray("services"));
  if (m.services.empty()) return fieldError("services", "expected at least one service name");
  for (size_t i = 0; i < m.services.size(); ++i) {
    const auto& s = m.services[i];
    if (s.empty() || s.find('/') != std::string::npos) {
      return fieldError(fmt::format("services[{}]", i), "expected a full service name like pkg.v1.Service, found '" + s + "'");
    }
  }
  const nlohmann::json* uidsField = r.field("allowedUids");
  if (uidsField == nullptr) return fieldError("allowedUids", "missing (the uids that may own the socket)");
  const auto& uids = *uidsField;
  if (!uids.is_array() || uids.empty()) return fieldError("allowedUids", "expected a non-empty array of uids");
  for (size_t i = 0; i < uids.size(); ++i) {
    if (!uids[i].is_number_unsigned() || uids[i].get<uint64_t>() > 0xfffffffeu) {
      return fieldError(fmt::format("allowedUids[{}]", i), "expected a uid (a non-negative integer)");
    }
    m.allowedUids.push_back(static_cast<uid_t>(uids[i].get<uint64_t>()));
  }
  KEEL_ASSIGN_OR_RETURN(m.rules, r.requiredString("rules"));
  if (m.rules != "builtin" && (m.rules.empty() || m.rules.front() != '/')) {
    return fieldError("rules", "expected \"builtin\" or the absolute path of a descriptor set, found '" + m.rules + "'");
  }
  KEEL_ASSIGN_OR_RETURN(const auto version, r.optionalString("version"));
  if (version) {
    if (version->empty() || version->size() > 64 || !std::all_of(version->begin(), version->end(), [](char c) {
          return std::isprint(static_cast<unsigned char>(c)) != 0;
        })) {
      return fieldError("version", "expected 1-64 printable characters");
    }
    m.version = *version;
  }
  KEEL_RETURN_IF_ERROR(r.finish());
  return m;
}

std::string serializeRouteEntry(const RouteEntry& entry) {
  nlohmann::json json = {{"name", entry.name},
                         {"socket", entry.socket.string()},
                         {"services", entry.services},
                         {"allowedUids", entry.allowedUids},
                         {"rules", entry.rules}};
  if (!entry.version.empty()) json["version"] = entry.version;
  return json.dump(2) + "\n";
}

}  // namespace keel::contracts
