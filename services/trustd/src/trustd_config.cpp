#include "trustd_config.h"

namespace keel::trustd {

backend::BackendConfig backendConfigOf(const TrustdConfig& config, const std::filesystem::path& path) {
  backend::BackendConfig out;
  out.name = "trustd";
  out.socket = config.socket;
  out.stateDir = path.parent_path();
  out.nodeAddress = config.nodeAddress;
  out.allowedPeerUids = config.allowedUids;
  return out;
}

}  // namespace keel::trustd
