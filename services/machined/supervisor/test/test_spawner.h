// The spawner the supervisor's tests start every service through, as machined does: the
// test main starts it first thing (test_main.cpp), and specs are confined the way the
// spawner requires.
#pragma once

#include <functional>

#include "keel/common/status.h"
#include "keel/supervisor/service_spec.h"
#include "keel/supervisor/spawner.h"

namespace keel::supervisor::testing {

// The uid and gid of the account confined services run under when the tests run as root
// (the spawner refuses to start a service as root): nobody.
inline constexpr uid_t kServiceUid = 65534;
inline constexpr gid_t kServiceGid = 65534;

// The spawner of this test process; it lives for the whole run.
Spawner& spawner();

// A SupervisorOptions::spawn that calls spawner().
std::function<Result<SpawnedProcess>(const ServiceSpec&)> spawnFunction();

// Confines `spec` as the spawner requires: the extension profile and, as root, the
// account above, with the state directory handed to it.
void confine(ServiceSpec& spec);

// A descriptor the test process held open, without close-on-exec, when it started the
// spawner, and the name of a variable that was in its environment then: neither may reach
// a service.
int leakedFd();
inline constexpr const char* kLeakedEnv = "KEEL_SUPERVISOR_TEST_INHERITED";

}  // namespace keel::supervisor::testing
