// What every keelctl command runs against: the clock, randomness, the environment the
// client config is looked up in, and where output goes. main() builds the real ones;
// tests build fakes. Also how the parsed command line picks the command to run.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/client_config.h"
#include "keel/config/random.h"

namespace CLI {
class App;
}

namespace keel::keelctl {

struct CommandEnv {
  const Clock& clock;
  config::RandomSource& random;
  config::ClientConfigEnv env;
  std::optional<std::filesystem::path> keelconfigFlag;  // --keelconfig
  std::ostream& out;
  // keelctl's exit code when a command sets it (health's bits); else 0, or 1 on error.
  int exitCode = 0;
};

using CommandAction = std::function<Status(CommandEnv&)>;

// When `cmd` is chosen on the command line, makes `run` the command keelctl runs once
// parsing is done: `action` is set to it. `run` reads the parsed arguments then, so
// they must outlive it.
void runWhenChosen(CLI::App& cmd, CommandAction& action, CommandAction run);

// Adds the advice an operator needs to an error from a library call: what to run to
// create a missing file, which flag replaces an existing one.
Status withHint(const Status& status, std::string_view missingFileHint);

}  // namespace keel::keelctl
