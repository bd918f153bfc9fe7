#include "keel/supervisor/spawner.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"
#include "spawner_protocol.h"
#include "test_spawner.h"

namespace keel::supervisor {
namespace {

using Catch::Matchers::ContainsSubstring;

ServiceSpec trueSpec(const keel::testing::TempDir& dir) {
  ServiceSpec spec;
  spec.id = "probe";
  spec.argv = {"/bin/true"};
  spec.stateDir = dir.path();
  spec.sandbox.confine = true;
  if (geteuid() == 0) {
    spec.sandbox.uid = testing::kServiceUid;
    spec.sandbox.gid = testing::kServiceGid;
  }
  return spec;
}

TEST_CASE("the spawner starts a confined service that its subreaper parent reaps", "[spawner]") {
  Spawner& spawner = testing::spawner();  // started by the test main; this process is its subreaper
  keel::testing::TempDir dir;
  auto spawned = spawner.spawn(trueSpec(dir));
  REQUIRE(spawned.ok());
  CHECK(spawned->setupError.empty());
  int status = 0;
  REQUIRE(waitpid(spawned->pid, &status, 0) == spawned->pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the spawner refuses an unconfined service, and a root one", "[spawner]") {
  Spawner& spawner = testing::spawner();  // started by the test main; this process is its subreaper
  keel::testing::TempDir dir;
  auto unconfined = trueSpec(dir);
  unconfined.sandbox.confine = false;
  const auto refused = spawner.spawn(unconfined);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(refused.status().message(), ContainsSubstring("no confinement"));
  if (geteuid() == 0) {
    auto asRoot = trueSpec(dir);
    asRoot.sandbox.uid = 0;
    asRoot.sandbox.gid = 0;
    CHECK(spawner.spawn(asRoot).status().code() == StatusCode::kPermissionDenied);
    auto noAccount = trueSpec(dir);
    noAccount.sandbox.uid.reset();
    noAccount.sandbox.gid.reset();
    const auto st = spawner.spawn(noAccount).status();
    CHECK(st.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(st.message(), ContainsSubstring("no account"));
  }
}

TEST_CASE("the spawner confines a service with the seccomp profile the request carries", "[spawner]") {
  Spawner& spawner = testing::spawner();  // started by the test main; this process is its subreaper
  keel::testing::TempDir dir;
  // Only execve: the dynamic loader's first call after it is killed, which the extension
  // profile would have let through.
  auto narrow = trueSpec(dir);
  narrow.sandbox.seccompProfile = "execve\n";
  auto spawned = spawner.spawn(narrow);
  REQUIRE(spawned.ok());
  CHECK(spawned->setupError.empty());
  int status = 0;
  REQUIRE(waitpid(spawned->pid, &status, 0) == spawned->pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSYS);

  // The spawner parses the profile itself: the hard deny list holds whatever machined sends.
  auto denied = trueSpec(dir);
  denied.sandbox.seccompProfile = "execve\nptrace\n";
  const auto refused = spawner.spawn(denied);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(refused.status().message(), ContainsSubstring("seccomp profile of /bin/true"));
  CHECK_THAT(refused.status().message(), ContainsSubstring("hard deny list"));

  auto huge = trueSpec(dir);
  huge.sandbox.seccompProfile = "execve\n" + std::string(detail::kMaxSeccompProfile, '#');
  const auto tooLarge = spawner.spawn(huge);
  REQUIRE_FALSE(tooLarge.ok());
  CHECK(tooLarge.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(tooLarge.status().message(), ContainsSubstring("seccomp profile of at most"));
}

TEST_CASE("a spawn request decodes its seccomp profile and refuses one that is too long", "[spawner]") {
  const auto encode = [](const std::string& profile) {
    detail::Writer w;
    w.strings({"/bin/true"}).strings({}).str("/").u8(1).u8(0).u32(0).u32(0).strings({}).str(profile);
    return w.take();
  };
  const auto decoded = detail::decodeSpawnRequest(encode("execve\n"));
  REQUIRE(decoded.has_value());
  CHECK(decoded->seccompProfile == "execve\n");
  CHECK(detail::decodeSpawnRequest(encode(std::string(detail::kMaxSeccompProfile, '#'))).has_value());
  CHECK_FALSE(detail::decodeSpawnRequest(encode(std::string(detail::kMaxSeccompProfile + 1, '#'))).has_value());
  // A request of the previous format (no profile field) is malformed, not misread.
  std::string old = encode("");
  old.resize(old.size() - 4);
  CHECK_FALSE(detail::decodeSpawnRequest(old).has_value());
}

}  // namespace
}  // namespace keel::supervisor
