// The node's view of files for List, Read and DiskUsage: node paths ("/var/log/x")
// map to host paths under --root, and access is confined to the allowed roots of the
// machine config, which a live config change may replace.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "keel/files/file_access.h"

namespace keel::machined {

// Allowed roots when the machine config names none.
inline const std::vector<std::string> kDefaultFileRoots = {"/var/log"};

class FileRoots {
 public:
  FileRoots(std::filesystem::path nodeRoot, const std::vector<std::string>& allowedRoots);

  // Replaces the allowed roots (node paths). Calls under way keep the old set. Thread-safe.
  void setAllowedRoots(const std::vector<std::string>& allowedRoots);

  // Host path of the absolute node path `nodePath`, which must lie under an allowed
  // root with no '..' and no symlink on the way. PERMISSION_DENIED otherwise.
  Result<std::filesystem::path> confine(const std::string& nodePath) const;
  // The node path of a host path under the root (the host path itself when outside).
  std::string toNodePath(const std::filesystem::path& hostPath) const;

  // As files::FileAccess, with node paths in and out.
  Result<files::Listing> list(const std::string& nodePath, int depth, const std::vector<files::EntryType>& types) const;
  Result<files::FileReader> openForRead(const std::string& nodePath) const;

 private:
  Result<std::filesystem::path> hostPath(const std::string& nodePath) const;
  std::shared_ptr<const files::FileAccess> access() const;

  std::filesystem::path nodeRoot_;
  mutable std::mutex mu_;
  std::shared_ptr<const files::FileAccess> access_;
  std::vector<std::string> nodeRoots_;
};

}  // namespace keel::machined
