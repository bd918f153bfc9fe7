// What the supervisor is told about a service: how to run it, how to confine it, when it
// may start and how its crashes are handled. Plain data, so that the spawner (another
// process) can be sent everything it needs.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace keel::supervisor {

// Crash handling. The n-th restart within `window` waits initialBackoff * 2^(n-1), at
// most maxBackoff; a crash when `maxRestarts` restarts already happened within `window`
// makes the service kFailed. Windows and timers use the monotonic clock, not the
// injected wall clock, so a clock jump neither triggers nor forgives anything.
struct RestartPolicy {
  std::chrono::milliseconds initialBackoff{250};
  std::chrono::milliseconds maxBackoff{30'000};
  int maxRestarts = 5;
  std::chrono::milliseconds window{60'000};
};

// How the spawner confines a service, as data: a closure cannot cross into the spawner's
// process. The supervisor itself does not read it.
struct ServiceSandbox {
  // Extension seccomp profile (or seccompProfile), no capabilities, no_new_privs, no core
  // dumps. The spawner refuses a service without it.
  bool confine = false;
  // Identity to take; both or neither. The spawner refuses uid or gid 0, and, when it runs
  // as root, a service without an identity.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Given to uid/gid before the identity switch (root only), never through a link: the
  // service's state directory and config file.
  std::vector<std::filesystem::path> chownPaths;
  // The seccomp profile to confine it with, in the text format of keel::sandbox::parsePolicy
  // (a backend's reviewed allow-list). Empty: the extension profile.
  std::string seccompProfile;
};

struct ServiceSpec {
  std::string id;                  // [a-z0-9][a-z0-9._-]*, at most 63 bytes; not "machined"
  std::vector<std::string> argv;   // argv[0] is an absolute path: no PATH search
  std::vector<std::string> env;    // "KEY=value": the child's whole environment, nothing inherited
  std::filesystem::path stateDir;  // absolute; created 0700 at each start; the working directory
  // Written by the caller (mode 0600, inside stateDir by convention) and named in argv;
  // checked to be a regular file at each start, a missing one fails the service. Empty: none.
  std::filesystem::path configFile;
  std::vector<std::string> dependsOn;  // ids of services that must be kRunning before this starts
  bool mayCallMachined = false;        // its pid is listed by servicePids()
  RestartPolicy restart;
  // kStarting becomes kRunning after the process stayed up this long: a cheap stand-in
  // for readiness that keeps dependents from starting against a service that dies at once.
  // Zero: kRunning as soon as exec succeeded.
  std::chrono::milliseconds settleTime{1000};
  std::chrono::milliseconds stopGracePeriod{10'000};  // SIGTERM, then SIGKILL after this
  ServiceSandbox sandbox;
};

}  // namespace keel::supervisor
