// Registers keelctl's machine commands (version, services, logs, …) on the command
// line, so main.cpp stays wiring only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "command_env.h"

namespace CLI {
class App;
}

namespace keel::keelctl {

struct MachineCliOptions {
  std::string root;    // --root: a local node's root directory
  std::string socket;  // --socket: machined.sock itself
  // Network path (neither --root nor --socket): override the current context's.
  std::vector<std::string> nodes;      // -n: targets apid forwards to (metadata node/nodes)
  std::vector<std::string> endpoints;  // -e: apid endpoints; the first is dialled
  std::string roles = "os:admin";
};

// Adds the commands and the global flags they use. When a command is chosen, `action`
// is set to run it.
void addMachineCommands(CLI::App& app, MachineCliOptions& options, CommandAction& action);

// Adds 'config generate' and 'config renew' under `configCmd`: they reach the cluster's
// certificate authority through apid with the global flags of the machine commands.
void addCertificateCommands(CLI::App& configCmd, MachineCliOptions& options, CommandAction& action);

}  // namespace keel::keelctl
