#include "keel/supervisor/child_setup.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch_test_macros.hpp>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keel/testing/testing.h"
#include "test_spawner.h"

namespace keel::supervisor {
namespace {

using keel::testing::TempDir;

// A confined /bin/true (or `argv`) in `workingDir`.
ServiceSpec probe(const std::filesystem::path& workingDir, std::vector<std::string> argv = {"/bin/true"}) {
  ServiceSpec spec;
  spec.id = "probe";
  spec.argv = std::move(argv);
  spec.stateDir = workingDir;
  testing::confine(spec);
  return spec;
}

// Starts `spec` through the spawner, reaps the child (handed to this process, a child
// subreaper) and returns what it reported.
std::string setupErrorOf(const ServiceSpec& spec) {
  auto spawned = testing::spawner().spawn(spec);
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
  CHECK(setupErrorOf(probe(missing)) ==
        "changing to the state directory " + missing.string() + ": No such file or directory");
}

TEST_CASE("a child whose exec fails reports the program and errno", "[child_setup]") {
  TempDir dir;
  CHECK(setupErrorOf(probe(dir.path(), {"/nonexistent/keel-no-such-binary"})) ==
        "exec /nonexistent/keel-no-such-binary: No such file or directory");
}

TEST_CASE("a path that cannot be handed to the service's account fails the start before exec", "[child_setup]") {
  if (::geteuid() != 0) SKIP("only a spawner running as root hands paths to a service's account");
  TempDir dir;
  // A link the service could have planted in its state directory: never followed.
  const auto link = dir / "config.json";
  REQUIRE(::symlink("/etc/passwd", link.c_str()) == 0);
  auto spec = probe(dir.path());
  spec.sandbox.chownPaths.push_back(link);
  CHECK(setupErrorOf(spec) ==
        "giving the state directory and config to the service's account (never through a link the service could "
        "have made): Too many levels of symbolic links");
}

TEST_CASE("a child that execs reports nothing", "[child_setup]") {
  TempDir dir;
  CHECK(setupErrorOf(probe(dir.path())).empty());
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
TEST_CASE("a path handed to a service's account is never followed through a link the service could plant",
          "[child_setup]") {
  keel::testing::TempDir dir;
  const auto outside = dir / "outside";  // stands for /etc/shadow: not the service's
  keel::testing::writeFile(outside, "secret");
  struct stat before {};
  REQUIRE(::stat(outside.c_str(), &before) == 0);
  // As root the test hands paths to nobody; otherwise to itself (the checks are the same).
  const uid_t uid = ::geteuid() == 0 ? 65534 : ::geteuid();
  const gid_t gid = ::geteuid() == 0 ? 65534 : ::getegid();

  const auto link = dir / "config.json";
  REQUIRE(::symlink(outside.c_str(), link.c_str()) == 0);
  CHECK(chownOwnedPath(link.c_str(), uid, gid) == ELOOP);
  const auto hard = dir / "key.pem";
  REQUIRE(::link(outside.c_str(), hard.c_str()) == 0);
  CHECK(chownOwnedPath(hard.c_str(), uid, gid) == EMLINK);
  struct stat after {};
  REQUIRE(::stat(outside.c_str(), &after) == 0);
  CHECK(after.st_uid == before.st_uid);
  CHECK(after.st_gid == before.st_gid);

  // The service's own file and directory are handed over.
  const auto own = dir / "state";
  std::filesystem::create_directory(own);
  keel::testing::writeFile(own / "config.json", "{}");
  CHECK(chownOwnedPath(own.c_str(), uid, gid) == 0);
  CHECK(chownOwnedPath((own / "config.json").c_str(), uid, gid) == 0);
  REQUIRE(::stat((own / "config.json").c_str(), &after) == 0);
  CHECK(after.st_uid == uid);
  CHECK(chownOwnedPath((own / "missing").c_str(), uid, gid) == ENOENT);
}

}  // namespace keel::supervisor
