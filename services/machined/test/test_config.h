// A valid control-plane machine config for machined's tests, made the way keelctl
// makes one (fresh secrets, then the generator).
#pragma once

#include <string>

#include "keel/common/clock.h"
#include "keel/config/generate.h"
#include "keel/config/machine_config.h"
#include "keel/config/random.h"
#include "keel/config/secrets.h"

namespace keel::machined::testing {

inline config::MachineConfig controlPlaneConfig() {
  SystemClock clock;
  config::SystemRandom random;
  auto secrets = config::generateSecrets({}, clock, random);
  KEEL_RELEASE_ASSERT(secrets.ok(), secrets.status().toString());
  auto endpoint = config::parseEndpoint("127.0.1.1");
  KEEL_RELEASE_ASSERT(endpoint.ok(), endpoint.status().toString());
  auto configs = config::generateMachineConfigs(*secrets, {"test", *endpoint, {}});
  KEEL_RELEASE_ASSERT(configs.ok(), configs.status().toString());
  return configs->controlPlane;
}

}  // namespace keel::machined::testing
