// machine.network alone: what the OS image's PID 1 reads from the machine config to set
// up the network before it starts machined.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/config/machine_config.h"

namespace keel::config {

struct MachineNetwork {
  std::optional<std::string> hostname;
  std::vector<NetworkInterface> interfaces;
};

// Only machine.network of a machine config, validated with parseMachineConfig's rules for
// it; the rest of the document (keys and certificates, whose checks are the costly part)
// is neither read nor checked: machined checks the whole config when it starts.
Result<MachineNetwork> parseMachineNetwork(std::string_view text);
// Errors start with the path.
Result<MachineNetwork> readMachineNetworkFile(const std::filesystem::path& path);

}  // namespace keel::config
