#include "src/state/file_roots.h"

namespace keel::machined {

namespace fs = std::filesystem;

FileRoots::FileRoots(fs::path nodeRoot, const std::vector<std::string>& allowedRoots)
    : nodeRoot_(std::move(nodeRoot)) {
  setAllowedRoots(allowedRoots);
}

void FileRoots::setAllowedRoots(const std::vector<std::string>& allowedRoots) {
  const auto& roots = allowedRoots.empty() ? kDefaultFileRoots : allowedRoots;
  std::vector<fs::path> host;
  for (const auto& r : roots) {
    const fs::path p(r);
    // The config loader refuses relative roots; one here would never match anything.
    if (p.is_absolute()) host.push_back((nodeRoot_ / p.relative_path()).lexically_normal());
  }
  auto next = std::make_shared<const files::FileAccess>(std::move(host));
  std::lock_guard lock(mu_);
  access_ = std::move(next);
  nodeRoots_ = roots;
}

std::shared_ptr<const files::FileAccess> FileRoots::access() const {
  std::lock_guard lock(mu_);
  return access_;
}

Result<fs::path> FileRoots::hostPath(const std::string& nodePath) const {
  const fs::path p(nodePath);
  if (!p.is_absolute()) return invalidArgument("expected an absolute path, got '" + nodePath + "'");
  for (const auto& part : p) {
    if (part == "..") return permissionDenied("'..' is not allowed in a path, got '" + nodePath + "'");
  }
  return (nodeRoot_ / p.relative_path()).lexically_normal();
}

std::string FileRoots::toNodePath(const fs::path& hostPath) const {
  const auto rel = hostPath.lexically_relative(nodeRoot_);
  if (rel.empty() || *rel.begin() == "..") return hostPath.string();
  const std::string s = "/" + rel.string();
  return s == "/." ? "/" : s;
}

Result<fs::path> FileRoots::confine(const std::string& nodePath) const {
  KEEL_ASSIGN_OR_RETURN(fs::path host, hostPath(nodePath));
  const auto a = access();
  bool inside = false;
  for (const auto& root : a->allowedRoots()) {
    const auto rel = host.lexically_relative(root);
    if (!rel.empty() && *rel.begin() != "..") inside = true;
  }
  std::vector<std::string> nodeRoots;
  {
    std::lock_guard lock(mu_);
    nodeRoots = nodeRoots_;
  }
  std::string allowed;
  for (const auto& r : nodeRoots) allowed += (allowed.empty() ? "" : ", ") + r;
  if (!inside) return permissionDenied("'" + nodePath + "' is outside the allowed roots (" + allowed + ")");
  std::error_code ec;
  const auto canonical = fs::canonical(host, ec);
  if (ec) return notFound("'" + nodePath + "': " + ec.message());
  if (canonical != host) {
    return permissionDenied("'" + nodePath + "' goes through a symlink; symlinks are never followed");
  }
  return host;
}

namespace {

void toNode(const FileRoots& roots, files::Listing& listing) {
  for (auto& e : listing.entries) e.name = roots.toNodePath(e.name);
}

// Error messages name node paths, never the host's --root prefix.
Status toNodeMessage(const fs::path& nodeRoot, const Status& s) {
  const std::string prefix = nodeRoot.lexically_normal().string();
  if (s.isOk() || prefix == "/" || prefix.empty()) return s;
  std::string m = s.message();
  for (size_t pos = m.find(prefix); pos != std::string::npos; pos = m.find(prefix, pos)) {
    m.erase(pos, prefix.size() - (prefix.back() == '/' ? 1 : 0));
  }
  return {s.code(), m};
}

}  // namespace

Result<files::Listing> FileRoots::list(const std::string& nodePath, int depth,
                                       const std::vector<files::EntryType>& types) const {
  KEEL_ASSIGN_OR_RETURN(fs::path host, hostPath(nodePath));
  auto listing = access()->list(host, depth, types);
  if (!listing.ok()) return toNodeMessage(nodeRoot_, listing.status());
  toNode(*this, *listing);
  return listing;
}

Result<files::FileReader> FileRoots::openForRead(const std::string& nodePath) const {
  KEEL_ASSIGN_OR_RETURN(fs::path host, hostPath(nodePath));
  auto reader = access()->openForRead(host);
  if (!reader.ok()) return toNodeMessage(nodeRoot_, reader.status());
  return reader;
}

}  // namespace keel::machined
