// services/README.md, followed by a test: a new backend daemon is made from the template
// (services/timed) at test time, renamed, given rules of its own, built against the
// exported SDK (build/sdk), and installed on a two-node cluster next to timed without a
// change to apid or machined. It must then be supervised, routed (also to both nodes at
// once), authorized by apid and by itself, health-checked and discovered through
// reflection, all from the outside with keelctl and gRPC clients.
#include <signal.h>

#include <fstream>
#include <regex>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/create_channel.h>

#include "apid_fixture.h"

namespace {

using namespace keel::integration;
using keel::testing::ProcessResult;
namespace fs = std::filesystem;

ProcessResult run(std::vector<std::string> argv, std::chrono::seconds timeout = 180s) {
  auto r = keel::testing::run(argv, {.workingDirectory = std::nullopt,
                                     .extraEnv = {{"KEELCONFIG", ""}},
                                     .stdinData = "",
                                     .timeout = timeout});
  UNSCOPED_INFO(argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " -> " << r.exitCode << "\n" << r.out << r.err);
  return r;
}

ProcessResult keelctl(const fs::path& keelconfig, std::vector<std::string> args) {
  std::vector<std::string> argv = {KEELCTL_PATH, "--keelconfig", keelconfig.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

std::string replaceAll(std::string text, const std::vector<std::pair<std::string, std::string>>& edits) {
  for (const auto& [from, to] : edits) {
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
      text.replace(pos, from.size(), to);
    }
  }
  return text;
}

// Step 1 of the walkthrough: copy services/timed and rename every part of it.
void copyRenamed(const fs::path& from, const fs::path& to) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"keel/time/v1/time", "acme/tick/v1/tick"}, {"keel.time.v1", "acme.tick.v1"},
      {"keel::time::v1", "acme::tick::v1"},       {"TimeService", "TickService"}};
  // The daemon's name, but not inside the system call rt_sigtimedwait.
  const std::regex name("timed(?!wait)");
  for (const auto& entry : fs::recursive_directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    const fs::path target =
        to / std::regex_replace(replaceAll(fs::relative(entry.path(), from).string(), edits), name, "tickd");
    fs::create_directories(target.parent_path());
    writeFile(target, std::regex_replace(replaceAll(readFile(entry.path()), edits), name, "tickd"));
  }
}

}  // namespace

TEST_CASE("a backend built from the template at test time is supervised, routed, authorized, health-checked and "
          "discovered",
          "[cluster]") {
  TempDir dir;
  chmod(dir.path().c_str(), 0711);
  const fs::path src = dir / "src";
  copyRenamed(fs::path(KEEL_SOURCE_DIR) / "services/timed", src / "tickd");
  REQUIRE(fs::exists(src / "tickd/proto/acme/tick/v1/tick.proto"));
  REQUIRE(fs::exists(src / "tickd/tickd.json"));
  // Step 2: its own rules. Reading the tick is for operators and admins only.
  const fs::path proto = src / "tickd/proto/acme/tick/v1/tick.proto";
  writeFile(proto, replaceAll(readFile(proto), {{"    option (keel.common.v1.allowed_roles) = \"os:reader\";\n", ""}}));
  REQUIRE(readFile(proto).find("os:reader\"") == std::string::npos);
  // Step 5: built outside the tree against the SDK.
  writeFile(src / "CMakeLists.txt",
            "cmake_minimum_required(VERSION 3.25)\n"
            "project(tick VERSION 1.4.2 LANGUAGES CXX)\n"
            "set(CMAKE_CXX_STANDARD 20)\n"
            "find_package(KeelSDK REQUIRED)\n"
            "add_subdirectory(tickd)\n");
  const fs::path out = dir / "out";
  REQUIRE(run({"cmake", "-S", src.string(), "-B", out.string(), "-G", "Ninja", "-DKeelSDK_DIR=" KEEL_SDK_DIR,
               "-DCMAKE_BUILD_TYPE=", "-DCMAKE_CXX_COMPILER=" KEEL_CXX_COMPILER,
               "-DCMAKE_CXX_FLAGS=" KEEL_TEMPLATE_CXX_FLAGS, "-DCMAKE_EXE_LINKER_FLAGS=" KEEL_TEMPLATE_LINK_FLAGS},
              300s)
              .exitCode == 0);
  REQUIRE(run({"ninja", "-C", out.string()}, 600s).exitCode == 0);
  const fs::path libexec = out / "libexec";
  for (const char* f : {"tickd", "backends/tickd.json", "backends/tickd.pb", "backends/tickd.policy"}) {
    INFO(f);
    REQUIRE(fs::exists(libexec / f));
  }
  // Step 6: installed next to the built-in daemons and timed, and named in the config.
  for (const char* f : {"apid", "trustd", "timed", "backends/timed.json", "backends/timed.pb", "backends/timed.policy"}) {
    fs::copy_file(fs::path(KEEL_LIBEXEC_DIR) / f, libexec / f, fs::copy_options::overwrite_existing);
  }
  fs::permissions(libexec, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const fs::path patch = dir / "patch.json";
  writeFile(patch, R"({"machine": {"backends": ["timed", "tickd"]}})");

  const fs::path root = dir / "cluster";
  const auto made = run({KEELCTL_PATH, "cluster", "create", "--controlplanes", "1", "--workers", "1", "--root",
                         root.string(), "--machined", MACHINED_PATH, "--libexec", libexec.string(), "--api-port",
                         std::to_string(freePort()), "--join-port", std::to_string(freePort()), "--name", "tpl",
                         "--config-patch", patch.string()});
  REQUIRE(made.exitCode == 0);
  const fs::path kc = root / "keelconfig";
  struct Destroy {
    fs::path root;
    ~Destroy() { keel::testing::run({KEELCTL_PATH, "cluster", "destroy", "--root", root.string()}, {}); }
  } destroy{root};
  const std::string both = "127.0.1.1,127.0.1.2";

  // Supervised: machined started it from its manifest, on both nodes, with its version.
  ProcessResult services;
  REQUIRE(eventually(
      [&] {
        services = keelctl(kc, {"-n", both, "services"});
        return std::regex_search(services.out, std::regex("127\\.0\\.1\\.1 +tickd +1\\.4\\.2 +running")) &&
               std::regex_search(services.out, std::regex("127\\.0\\.1\\.2 +tickd +1\\.4\\.2 +running")) &&
               std::regex_search(services.out, std::regex("127\\.0\\.1\\.2 +timed +\\S+ +running"));
      },
      60s));

  // Routed, to both nodes at once, with no keelctl change: the generic call.
  ProcessResult call;
  REQUIRE(eventually(
      [&] {
        call = keelctl(kc, {"-n", both, "call", "acme.tick.v1.TickService/Now", "{}"});
        return call.exitCode == 0;
      },
      30s));
  CHECK_THAT(call.out, ContainsSubstring("127.0.1.1"));
  CHECK_THAT(call.out, ContainsSubstring("127.0.1.2"));
  CHECK_THAT(call.out, ContainsSubstring("wall_rfc3339"));
  // timed alongside it, through its own command.
  const auto time = keelctl(kc, {"-n", both, "time"});
  CHECK(time.exitCode == 0);
  CHECK_THAT(time.out, ContainsSubstring("127.0.1.2"));

  // Discovered through reflection, via apid.
  const auto list = keelctl(kc, {"call", "--list"});
  CHECK(list.exitCode == 0);
  CHECK_THAT(list.out, ContainsSubstring("acme.tick.v1.TickService"));
  CHECK_THAT(list.out, ContainsSubstring("keel.time.v1.TimeService"));

  // Health-checked per service, via apid.
  const auto health = keelctl(kc, {"-n", "127.0.1.2", "call", "grpc.health.v1.Health/Check",
                                   R"({"service": "acme.tick.v1.TickService"})"});
  CHECK(health.exitCode == 0);
  CHECK_THAT(health.out, ContainsSubstring("SERVING"));

  // Authorized by apid with the rules it ships: a reader is refused, naming the roles.
  const fs::path readerKc = dir / "reader.keelconfig";
  REQUIRE(keelctl(kc, {"-n", "127.0.1.1", "config", "generate", readerKc.string(), "--roles", "os:reader"}).exitCode == 0);
  const auto denied = keelctl(readerKc, {"-n", "127.0.1.1", "call", "acme.tick.v1.TickService/Now", "{}"});
  CHECK(denied.exitCode != 0);
  CHECK_THAT(denied.err, ContainsSubstring("os:operator"));
  CHECK(keelctl(readerKc, {"-n", "127.0.1.1", "time"}).exitCode == 0);

  // And by itself: a local process calling its socket directly carries no roles.
  const fs::path socket = root / "nodes/127.0.1.2/root/run/keel-tickd/tickd.sock";
  REQUIRE(fs::exists(socket));
  auto direct = grpc::CreateChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials());
  const auto st = rawCall(*direct, "/acme.tick.v1.TickService/Now", "", nullptr, {{"keel-roles", "os:admin"}});
  if (geteuid() == 0) {
    // As root, the node's services run under their own accounts: this test's uid is not
    // apid's, and the peer check refuses the connection before gRPC reads a byte.
    CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(eventually([&] { return keelctl(kc, {"-n", "127.0.1.2", "logs", "tickd"}).out.find("allow-list") !=
                                  std::string::npos; }, 10s));
  } else {
    // Unprivileged, every service runs as this uid: the connection is accepted, and a
    // call without forwarded roles is refused by the daemon's own check.
    const auto none = rawCall(*direct, "/acme.tick.v1.TickService/Now", "");
    CHECK(none.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }

  // Supervised: killed, it is started again and serves again.
  const std::regex pidRe("127\\.0\\.1\\.2 +tickd +\\S+ +running +(\\d+)");
  std::smatch m;
  services = keelctl(kc, {"-n", "127.0.1.2", "services"});
  REQUIRE(std::regex_search(services.out, m, pidRe));
  const int pid = std::stoi(m[1]);
  REQUIRE(kill(pid, SIGKILL) == 0);
  REQUIRE(eventually(
      [&] {
        services = keelctl(kc, {"-n", "127.0.1.2", "services"});
        return std::regex_search(services.out, m, pidRe) && std::stoi(m[1]) != pid &&
               keelctl(kc, {"-n", "127.0.1.2", "call", "acme.tick.v1.TickService/Now", "{}"}).exitCode == 0;
      },
      60s));
}
