// keelctl's commands against a node's machine API: version, services, logs, system
// facts, files, configuration and power. Each prints a table by default, or JSON/YAML.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "keel/common/status.h"

#include "machine_client.h"
#include "node_calls.h"

namespace keel::keelctl {

// The printing halves of version and services, for a reply already received.
Status printVersions(MachineCommandEnv& env, const keel::machine::v1::VersionResponse& resp);
Status printServices(MachineCommandEnv& env, const keel::machine::v1::ServiceListResponse& resp);

Status cmdVersion(MachineCommandEnv& env);
// The service ids of the target node(s), one per line (shell completion).
Status cmdServiceNames(MachineCommandEnv& env);
Status cmdServices(MachineCommandEnv& env);
// action: start, stop, restart or status.
Status cmdService(MachineCommandEnv& env, const std::string& id, const std::string& action);
Status cmdLogs(MachineCommandEnv& env, const std::string& service, int tail, bool follow);
Status cmdDmesg(MachineCommandEnv& env, int tail, bool follow);
Status cmdEvents(MachineCommandEnv& env, int tail, bool follow);
Status cmdMemory(MachineCommandEnv& env);
Status cmdProcesses(MachineCommandEnv& env);
Status cmdMounts(MachineCommandEnv& env);
Status cmdUsage(MachineCommandEnv& env, const std::string& path, int depth);
// types: any of "f", "d", "l" (regular, directory, symlink).
Status cmdList(MachineCommandEnv& env, const std::string& path, int depth, const std::vector<std::string>& types);
Status cmdRead(MachineCommandEnv& env, const std::string& path);
Status cmdGetConfig(MachineCommandEnv& env);
// mode: auto, no-reboot, reboot or try.
Status cmdApplyConfig(MachineCommandEnv& env, const std::string& file, const std::string& mode,
                      std::chrono::seconds tryTimeout);
Status cmdConfirmConfig(MachineCommandEnv& env);
// action: reboot, shutdown or reset. Asks for confirmation unless env.assumeYes.
Status cmdPower(MachineCommandEnv& env, const std::string& action);

struct UpgradeArgs {
  std::filesystem::path image;
  std::filesystem::path signature;  // empty: <image>.sig
  bool noReboot = false;
  bool allowDowngrade = false;  // install an image older than the running one
};

// Streams a signed image file to one node's Upgrade, showing progress on env.err.
Status cmdUpgrade(MachineCommandEnv& env, const UpgradeArgs& args);
Status cmdRollback(MachineCommandEnv& env);

}  // namespace keel::keelctl
