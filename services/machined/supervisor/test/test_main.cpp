// The supervisor tests' main: starts the spawner while the process has one thread, as
// machined does, then runs the tests.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <catch2/catch_session.hpp>

#include "test_spawner.h"

namespace keel::supervisor::testing {
namespace {

std::unique_ptr<Spawner> gSpawner;
int gLeakedFd = -1;

}  // namespace

Spawner& spawner() { return *gSpawner; }

std::function<Result<SpawnedProcess>(const ServiceSpec&)> spawnFunction() {
  return [](const ServiceSpec& spec) { return spawner().spawn(spec); };
}

void confine(ServiceSpec& spec) {
  spec.sandbox.confine = true;
  if (::geteuid() == 0) {
    spec.sandbox.uid = kServiceUid;
    spec.sandbox.gid = kServiceGid;
    spec.sandbox.chownPaths = {spec.stateDir};
  }
}

int leakedFd() { return gLeakedFd; }

}  // namespace keel::supervisor::testing

int main(int argc, char* argv[]) {
  namespace t = keel::supervisor::testing;
  // Inherited by the spawner, so a test can check that no service gets them.
  t::gLeakedFd = ::open("/dev/null", O_RDONLY);
  ::setenv(t::kLeakedEnv, "1", 1);
  // Services are double-forked by the spawner and handed to this process, which the
  // supervisor under test reaps them from.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    std::fprintf(stderr, "supervisor tests: prctl(PR_SET_CHILD_SUBREAPER): %s\n", keel::errnoText(errno).c_str());
    return 2;
  }
  auto started = keel::supervisor::Spawner::start();
  if (!started.ok()) {
    std::fprintf(stderr, "supervisor tests: no spawner: %s\n", started.status().toString().c_str());
    return 2;
  }
  t::gSpawner = std::move(started).value();
  const int result = Catch::Session().run(argc, argv);
  // Closing the socket ends the spawner, and with it anything a failed test left running.
  t::gSpawner.reset();
  return result;
}
