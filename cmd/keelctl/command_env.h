// What every keelctl command runs against: the clock, randomness, the environment the
// client config is looked up in, and where output goes. main() builds the real ones;
// tests build fakes.
#pragma once

#include <filesystem>
#include <optional>
#include <ostream>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/client_config.h"
#include "keel/config/random.h"

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

// Adds the advice an operator needs to an error from a library call: what to run to
// create a missing file, which flag replaces an existing one.
Status withHint(const Status& status, std::string_view missingFileHint);

}  // namespace keel::keelctl
