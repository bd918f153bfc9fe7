// A whole node for integration tests: a control-plane config made by the real keelctl,
// and the real machined binary started with --root in a temporary directory.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"

namespace keel::integration {

namespace v1 = keel::machine::v1;
using keel::common::v1::Empty;
using keel::testing::ChildProcess;
using keel::testing::eventually;
using keel::testing::readFile;
using keel::testing::TempDir;
using keel::testing::writeFile;
using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

// Makes a control-plane config with keelctl, then adds two extension services and the
// allowed file roots the tests use.
inline nlohmann::json makeConfig(const TempDir& dir) {
  const auto gen = keel::testing::run({KEELCTL_PATH, "gen", "config", "test", "127.0.1.1", "-o", dir.path().string()});
  REQUIRE(gen.exitCode == 0);
  auto config = nlohmann::json::parse(readFile(dir / "controlplane.json"));
  config["machine"]["extensions"] = nlohmann::json::array({
      {{"name", "ticker"},
       {"command", "/bin/sh"},
       {"args", {"-c", "echo ticker up; while true; do echo tick; sleep 0.2; done"}}},
      {{"name", "sleeper"}, {"command", "/bin/sleep"}, {"args", {"3600"}}, {"dependsOn", {"ticker"}}},
  });
  config["machine"]["files"] = {{"allowedRoots", {"/var/log", "/srv/data"}}};
  return config;
}

inline bool fileContains(const std::filesystem::path& path, const std::string& text) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  return readFile(path).find(text) != std::string::npos;
}

class Node {
 public:
  explicit Node(const nlohmann::json& config, std::vector<std::string> extraArgs = {},
                std::string address = "127.0.1.1")
      : address_(std::move(address)) {
    // Services run as another uid when the tests run as root: they must be able to
    // traverse down to their own state directory and to the socket directory.
    chmod(dir_.path().c_str(), 0711);
    std::filesystem::create_directories(dir_ / "root/srv/data");
    writeFile(dir_ / "config.json", config.dump(2));
    chmod((dir_ / "config.json").c_str(), 0600);
    writeFile(dir_ / "kmsg", "6,1,1000000,-;kernel says hello\n6,2,2000000,-;second record\n");
    std::vector<std::string> argv = {MACHINED_PATH, "--root", root().string(), "--config",
                                     (dir_ / "config.json").string(), "--address", address_,
                                     "--kmsg", (dir_ / "kmsg").string(), "--service-settle-ms", "200",
                                     "--service-stop-grace-ms", "2000", "--log-level", "debug"};
    argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
    argv_ = argv;
    process_ = std::make_unique<ChildProcess>(argv, dir_ / "machined.log");
    if (std::find(extraArgs.begin(), extraArgs.end(), "--no-allow-invoking-user") != extraArgs.end()) {
      REQUIRE(eventually([&] { return std::filesystem::exists(socket()); }, 20s));
    } else {
      REQUIRE(waitForApi());
    }
  }
  ~Node() {
    if (!process_->running()) return;
    process_->signal(SIGTERM);
    // No assertion here: a destructor must not throw. A machined that does not stop is
    // killed by ChildProcess, and the exit tests check clean stops explicitly.
    if (!process_->wait(15s)) std::fprintf(stderr, "machined did not stop on SIGTERM:\n%s\n", process_->log().c_str());
  }

  // Starts machined again on the same root after its process ended (a crash, a kill).
  void restart() {
    process_ = std::make_unique<ChildProcess>(argv_, dir_ / "machined.log");
    REQUIRE(waitForApi());
  }

  const std::string& address() const { return address_; }
  std::filesystem::path root() const { return dir_ / "root"; }
  std::filesystem::path socket() const { return root() / "run/keel/machined.sock"; }
  ChildProcess& process() { return *process_; }
  std::string log() const { return process_->log(); }

  std::unique_ptr<v1::MachineService::Stub> stub() const {
    return v1::MachineService::NewStub(
        grpc::CreateChannel("unix:" + socket().string(), grpc::InsecureChannelCredentials()));
  }

  bool waitForApi() {
    return eventually(
        [&] {
          grpc::ClientContext ctx;
          withRoles(ctx, "os:reader");
          ctx.set_deadline(std::chrono::system_clock::now() + 1s);
          Empty req;
          v1::VersionResponse resp;
          return stub()->Version(&ctx, req, &resp).ok();
        },
        20s);
  }

  static void withRoles(grpc::ClientContext& ctx, const std::string& roles) {
    ctx.AddMetadata("keel-roles", roles);
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  }

  v1::ServiceInfo service(const std::string& id) {
    grpc::ClientContext ctx;
    withRoles(ctx, "os:reader");
    Empty req;
    v1::ServiceListResponse resp;
    REQUIRE(stub()->ServiceList(&ctx, req, &resp).ok());
    for (const auto& s : resp.messages(0).services()) {
      if (s.id() == id) return s;
    }
    FAIL("no service " + id);
    return {};
  }

  bool waitForState(const std::string& id, const std::string& state, std::chrono::milliseconds timeout = 20s) {
    return eventually([&] { return service(id).state() == state; }, timeout);
  }

 private:
  std::string address_;
  TempDir dir_;
  std::vector<std::string> argv_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace keel::integration
