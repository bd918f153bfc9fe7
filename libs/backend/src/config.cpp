#include "keel/backend/config.h"

#include <limits>

#include "keel/config/file_io.h"
#include "keel/config/json_fields.h"

namespace keel::backend {

namespace fs = std::filesystem;
using config::ObjectReader;

namespace {

Result<fs::path> absolutePath(ObjectReader& root, std::string_view key, bool required) {
  std::string text;
  if (required) {
    KEEL_ASSIGN_OR_RETURN(text, root.requiredString(key));
  } else {
    KEEL_ASSIGN_OR_RETURN(auto maybe, root.optionalString(key));
    if (!maybe) return fs::path();
    text = *maybe;
  }
  if (text.empty() || text.front() != '/') return config::fieldError(root.pathOf(key), "expected an absolute path");
  return fs::path(text);
}

}  // namespace

Result<BackendConfig> parseBackendConfig(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto doc, config::parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto root, ObjectReader::open(doc, ""));
  BackendConfig out;
  KEEL_ASSIGN_OR_RETURN(out.name, root.requiredString("name"));
  if (out.name.empty()) return config::fieldError("name", "expected a non-empty name");
  KEEL_ASSIGN_OR_RETURN(auto version, root.optionalString("version"));
  out.version = version.value_or("");
  KEEL_ASSIGN_OR_RETURN(out.socket, absolutePath(root, "socket", true));
  KEEL_ASSIGN_OR_RETURN(out.stateDir, absolutePath(root, "stateDir", true));
  KEEL_ASSIGN_OR_RETURN(out.machinedSocket, absolutePath(root, "machinedSocket", false));
  KEEL_ASSIGN_OR_RETURN(auto address, root.optionalString("nodeAddress"));
  out.nodeAddress = address.value_or("");
  const nlohmann::json* uids = root.field("allowedPeerUids");
  if (uids == nullptr || !uids->is_array() || uids->empty()) {
    return config::fieldError("allowedPeerUids", "expected a non-empty array of uids (apid's first)");
  }
  for (std::size_t i = 0; i < uids->size(); ++i) {
    const auto& u = (*uids)[i];
    if (!u.is_number_integer() || u.get<int64_t>() < 0 || u.get<int64_t>() > std::numeric_limits<uid_t>::max() - 1) {
      return config::fieldError("allowedPeerUids[" + std::to_string(i) + "]", "expected a uid");
    }
    out.allowedPeerUids.push_back(static_cast<uid_t>(u.get<int64_t>()));
  }
  if (const nlohmann::json* settings = root.field("settings")) {
    if (!settings->is_object()) return config::fieldError("settings", "expected an object");
    out.settings = *settings;
  }
  KEEL_RETURN_IF_ERROR(root.finish());
  return out;
}

Result<BackendConfig> readBackendConfigFile(const fs::path& path) {
  return config::readPrivateDocument(path, "a backend's config", parseBackendConfig);
}

}  // namespace keel::backend
