// The node unit for apid's routing entries: one file per service owner in backends.d.
#include "src/node/node.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "keel/config/file_io.h"
#include "keel/contracts/route_entry.h"

#include "src/node/node_detail.h"

namespace keel::machined {

namespace fs = std::filesystem;

Status Node::writeRoute(const std::string& name, const fs::path& socket,
                                  const std::vector<std::string>& services, uid_t uid, const std::string& rules) {
  const fs::path dir = paths_.backendsDir();
  // Like the socket directory: only machined and apid's group may read the manifests.
  KEEL_RETURN_IF_ERROR(makeDir(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec));
  const bool root = geteuid() == 0;
  if (root && chown(dir.c_str(), 0, apidGid_) != 0) {
    return internalError("cannot give " + dir.string() + " to apid's group: " + errnoText(errno));
  }
  const contracts::RouteEntry entry{.name = name,
                                    .socket = fs::absolute(socket).lexically_normal(),
                                    .services = services,
                                    .allowedUids = {uid},
                                    .rules = rules,
                                    .version = {},
                                    .servedByApid = false};
  // Mode and group are set on a temporary name, then renamed: apid never sees the file
  // with the wrong ones.
  const fs::path file = dir / (name + ".json");
  const fs::path tmp = dir / ("." + name + ".json.new");
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(tmp, contracts::serializeRouteEntry(entry), config::Overwrite::kYes));
  std::error_code ec;
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                  fs::perm_options::replace, ec);
  if (ec) return internalError("cannot set the mode of " + tmp.string() + ": " + ec.message());
  if (root && chown(tmp.c_str(), 0, apidGid_) != 0) {
    return internalError("cannot give " + tmp.string() + " to apid's group: " + errnoText(errno));
  }
  fs::rename(tmp, file, ec);
  if (ec) return internalError("cannot rename " + tmp.string() + " to " + file.string() + ": " + ec.message());
  routed_.insert(name);
  return Status::ok();
}

void Node::removeStaleRoutes() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(paths_.backendsDir(), ec)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".json" || p.filename().string().front() == '.') continue;
    if (routed_.count(p.stem().string()) != 0) continue;
    std::error_code removeError;
    fs::remove(p, removeError);
    if (removeError) {
      spdlog::warn("machined: cannot remove the stale route {}: {}", p.string(), removeError.message());
    } else {
      spdlog::info("machined: removed the route {}: no such backend runs on this node", p.string());
    }
  }
}

}  // namespace keel::machined
