#include "src/spawner.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace keel::machined {
namespace {

using Catch::Matchers::ContainsSubstring;

supervisor::ServiceSpec trueSpec(const keel::testing::TempDir& dir) {
  supervisor::ServiceSpec spec;
  spec.id = "probe";
  spec.argv = {"/bin/true"};
  spec.stateDir = dir.path();
  spec.sandbox.confine = true;
  if (geteuid() == 0) {
    spec.sandbox.uid = 65534;
    spec.sandbox.gid = 65534;
  }
  return spec;
}

TEST_CASE("the spawner starts a confined service that its subreaper parent reaps", "[spawner]") {
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  auto spawner = Spawner::start();
  REQUIRE(spawner.ok());
  keel::testing::TempDir dir;
  auto spawned = (*spawner)->spawn(trueSpec(dir));
  REQUIRE(spawned.ok());
  CHECK(spawned->setupError.empty());
  int status = 0;
  REQUIRE(waitpid(spawned->pid, &status, 0) == spawned->pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the spawner refuses an unconfined service, and a root one", "[spawner]") {
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  auto spawner = Spawner::start();
  REQUIRE(spawner.ok());
  keel::testing::TempDir dir;
  auto unconfined = trueSpec(dir);
  unconfined.sandbox.confine = false;
  const auto refused = (*spawner)->spawn(unconfined);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(refused.status().message(), ContainsSubstring("no confinement"));
  if (geteuid() == 0) {
    auto asRoot = trueSpec(dir);
    asRoot.sandbox.uid = 0;
    asRoot.sandbox.gid = 0;
    CHECK((*spawner)->spawn(asRoot).status().code() == StatusCode::kPermissionDenied);
    auto noAccount = trueSpec(dir);
    noAccount.sandbox.uid.reset();
    noAccount.sandbox.gid.reset();
    const auto st = (*spawner)->spawn(noAccount).status();
    CHECK(st.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(st.message(), ContainsSubstring("no account"));
  }
}

}  // namespace
}  // namespace keel::machined
