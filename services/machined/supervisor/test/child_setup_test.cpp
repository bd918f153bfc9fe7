#include "keel/supervisor/child_setup.h"

#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include <catch2/catch_test_macros.hpp>
#include <sys/wait.h>

#include "keel/supervisor/spawn.h"
#include "keel/testing/testing.h"

namespace keel::supervisor {
namespace {

using keel::testing::TempDir;

// Starts `request`, reaps the child and returns what it reported.
std::string setupErrorOf(const SpawnRequest& request) {
  auto spawned = spawnProcess(request);
  REQUIRE(spawned.ok());
  int status = 0;
  REQUIRE(::waitpid(spawned->pid, &status, 0) == spawned->pid);
  if (!spawned->setupError.empty()) {
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 127);
  }
  return spawned->setupError;
}

TEST_CASE("a child that cannot enter its working directory reports the directory and errno",
          "[child_setup]") {
  TempDir dir;
  const auto missing = dir / "missing";
  CHECK(setupErrorOf({{"/bin/true"}, {}, missing, {}}) ==
        "changing to the state directory " + missing.string() + ": No such file or directory");
}

TEST_CASE("a child whose exec fails reports the program and errno", "[child_setup]") {
  TempDir dir;
  CHECK(setupErrorOf({{"/nonexistent/keel-no-such-binary"}, {}, dir.path(), {}}) ==
        "exec /nonexistent/keel-no-such-binary: No such file or directory");
}

TEST_CASE("a pre-exec hook that throws fails the start", "[child_setup]") {
  TempDir dir;
  CHECK(setupErrorOf({{"/bin/true"}, {}, dir.path(), [] { throw std::runtime_error("no"); }}) ==
        "the pre-exec hook (it threw)");
}

TEST_CASE("a child that execs reports nothing", "[child_setup]") {
  TempDir dir;
  CHECK(setupErrorOf({{"/bin/true"}, {}, dir.path(), {}}).empty());
}

TEST_CASE("a sandbox failure is named by the caller's step names", "[child_setup]") {
  auto pipes = ChildPipes::open();
  REQUIRE(pipes.ok());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) reportChildFailure(pipes->statusWrite.get(), ChildStep::kSandbox, EPERM, 12);
  pipes->closeChildEnds();
  const auto name = [](int step) -> std::string_view { return step == 12 ? "seccomp" : "other"; };
  const Status st = readChildReport(pipes->statusRead.get(), {"/bin/x", "/", name});
  CHECK(st.code() == StatusCode::kFailedPrecondition);
  CHECK(st.message() == "confining the service failed at step seccomp: Operation not permitted");
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WEXITSTATUS(status) == 127);
}

TEST_CASE("a truncated report is an internal error", "[child_setup]") {
  auto pipes = ChildPipes::open();
  REQUIRE(pipes.ok());
  const int partial = 1;
  REQUIRE(::write(pipes->statusWrite.get(), &partial, sizeof partial) == sizeof partial);
  pipes->closeChildEnds();
  const Status st = readChildReport(pipes->statusRead.get(), {});
  CHECK(st.code() == StatusCode::kInternal);
  CHECK(st.message() == "child setup: truncated status report");
}

}  // namespace
}  // namespace keel::supervisor
