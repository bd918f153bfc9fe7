// Checking the service specs a supervisor is created with, and putting them in dependency
// order: the order services start in, and the reverse of the one they stop in.
#pragma once

#include <vector>

#include "keel/common/status.h"
#include "keel/supervisor/supervisor.h"

namespace keel::supervisor {

// One spec on its own: id, absolute argv[0], stateDir and configFile, KEY=value env
// entries, sane restart policy and durations. INVALID_ARGUMENT naming the service and
// what was expected otherwise.
Status validateSpec(const ServiceSpec& spec);

// Validates every spec and orders them so that each comes after its dependencies,
// keeping declaration order where the dependencies allow it. INVALID_ARGUMENT for an
// invalid spec, a duplicate id, an undeclared dependency or a cycle (naming the services
// in it).
Result<std::vector<ServiceSpec>> sortByDependencies(std::vector<ServiceSpec> specs);

}  // namespace keel::supervisor
