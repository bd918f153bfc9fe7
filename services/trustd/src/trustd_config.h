// trustd's config file is a contract between machined and trustd (keel/contracts/
// trustd_config.h); what the backend SDK serves trustd with comes from it.
#pragma once

#include <filesystem>

#include "keel/backend/config.h"
#include "keel/contracts/trustd_config.h"

namespace keel::trustd {

using contracts::TrustdConfig;

// What the backend SDK serves trustd with, from trustd's config read from `path` (which
// machined writes into trustd's state directory).
backend::BackendConfig backendConfigOf(const TrustdConfig& config, const std::filesystem::path& path);

}  // namespace keel::trustd
