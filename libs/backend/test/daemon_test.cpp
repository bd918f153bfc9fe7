// runDaemon end to end, through test_daemon (a real process: the daemon confines itself).
#include <signal.h>
#include <sys/wait.h>

#include <future>

#include <catch2/catch_test_macros.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "keel/backend/daemon.h"
#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"

using keel::testing::TempDir;
using namespace std::chrono_literals;

namespace {

// The status of a unary call of `method` with an empty request, whatever its types.
grpc::Status genericCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  return done.get_future().get();
}

}  // namespace

TEST_CASE("a daemon reads its own config format, serves replies beyond the request limit without reflection, "
          "reports when it serves, and stops cleanly on SIGTERM") {
  TempDir dir;
  const auto socket = dir / "d.sock";
  keel::testing::writeFile(dir / "config", socket.string() + "\n");
  keel::testing::ChildProcess daemon({TEST_DAEMON_PATH, "--config", (dir / "config").string()}, dir / "log");
  REQUIRE(keel::testing::eventually([&] { return daemon.log().find("ready for calls") != std::string::npos; }, 30s));
  INFO(daemon.log());
  CHECK(daemon.log().find("serving keel.machine.v1.MachineService") < daemon.log().find("ready for calls"));

  const auto channel = grpc::CreateChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials());
  auto machine = keel::machine::v1::MachineService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("keel-roles", "os:reader");
  keel::machine::v1::HostnameResponse hostname;
  const auto st = machine->Hostname(&ctx, {}, &hostname);
  CHECK(st.ok());
  REQUIRE(hostname.messages_size() == 1);
  CHECK(hostname.messages(0).hostname().size() == 100 * 1024);

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext hctx;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("keel.machine.v1.MachineService");
  grpc::health::v1::HealthCheckResponse serving;
  CHECK(health->Check(&hctx, request, &serving).ok());
  CHECK(serving.status() == grpc::health::v1::HealthCheckResponse::SERVING);

  const auto reflection = genericCall(channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  CHECK(reflection.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  // Without reflection, gRPC's reflection library is not even loaded.
  const auto maps = keel::testing::readFile("/proc/" + std::to_string(daemon.pid()) + "/maps");
  CHECK(maps.find("libgrpc++_reflection") == std::string::npos);
  CHECK(maps.find("libgrpc++.so") != std::string::npos);

  daemon.signal(SIGTERM);
  const auto status = daemon.wait(30s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("a daemon that asks for reflection without keel_backend_reflection linked refuses to start, saying why") {
  TempDir dir;
  const auto socket = dir / "d.sock";
  keel::testing::writeFile(dir / "config", socket.string() + "\n");
  setenv("TEST_DAEMON_REFLECTION", "1", 1);
  keel::testing::ChildProcess daemon({TEST_DAEMON_PATH, "--config", (dir / "config").string()}, dir / "log");
  unsetenv("TEST_DAEMON_REFLECTION");
  const auto status = daemon.wait(30s);
  REQUIRE(status.has_value());
  INFO(daemon.log());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 1);
  CHECK(daemon.log().find("built without keel_backend_reflection") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(socket));
}

TEST_CASE("a daemon's config is read by its spec's reader, or in the common format without one") {
  TempDir dir;
  keel::testing::writeFile(dir / "config", "/run/x.sock\n");
  keel::backend::DaemonSpec spec;
  CHECK_FALSE(keel::backend::readDaemonConfig(spec, dir / "config").ok());
  spec.readConfig = [](const std::filesystem::path& path) -> keel::Result<keel::backend::BackendConfig> {
    keel::backend::BackendConfig c;
    c.socket = keel::testing::readFile(path).substr(0, 11);
    return c;
  };
  const auto read = keel::backend::readDaemonConfig(spec, dir / "config");
  REQUIRE(read.ok());
  CHECK(read->socket == "/run/x.sock");
}
