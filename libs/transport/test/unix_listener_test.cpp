#include "keel/transport/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <grpcpp/grpcpp.h>

#include "keel/machine/v1/machine.grpc.pb.h"
#include "keel/testing/testing.h"

namespace keel::transport {
namespace {

// Answers Version without checks: this test is about who may connect at all.
class OpenService final : public keel::machine::v1::MachineService::Service {
  grpc::Status Version(grpc::ServerContext*, const keel::common::v1::Empty*,
                       keel::machine::v1::VersionResponse* resp) override {
    resp->add_messages()->set_version("test");
    return grpc::Status::OK;
  }
};

struct Served {
  OpenService service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<UnixListener> listener;
  std::atomic<int> refused{0};

  Served(const std::filesystem::path& path, bool allow) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    auto l = UnixListener::bind(path, [this, allow](const PeerCredentials& peer) {
      if (allow && peer.pid == getpid() && peer.uid == getuid()) return Status::ok();
      ++refused;
      return permissionDenied("not allowed");
    });
    REQUIRE(l.ok());
    listener = std::move(*l);
    listener->start(server.get());
  }
  ~Served() {
    listener->stop();
    server->Shutdown();
  }
};

grpc::Status callVersion(const std::filesystem::path& path) {
  auto channel = grpc::CreateChannel("unix:" + path.string(), grpc::InsecureChannelCredentials());
  auto stub = keel::machine::v1::MachineService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  keel::common::v1::Empty req;
  keel::machine::v1::VersionResponse resp;
  return stub->Version(&ctx, req, &resp);
}

TEST_CASE("an allowed peer reaches the server through the listener", "[listener]") {
  keel::testing::TempDir dir;
  Served s(dir / "m.sock", true);
  CHECK(callVersion(dir / "m.sock").ok());
  struct stat st {};
  REQUIRE(stat((dir / "m.sock").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
}

TEST_CASE("a refused peer is cut off before any handler runs", "[listener]") {
  keel::testing::TempDir dir;
  Served s(dir / "m.sock", false);
  const auto status = callVersion(dir / "m.sock");
  CHECK_FALSE(status.ok());
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(s.refused.load() >= 1);
}

TEST_CASE("the listener refuses to replace a file that is not a socket", "[listener]") {
  keel::testing::TempDir dir;
  keel::testing::writeFile(dir / "m.sock", "precious");
  auto l = UnixListener::bind(dir / "m.sock", [](const PeerCredentials&) { return Status::ok(); });
  REQUIRE_FALSE(l.ok());
  CHECK(l.status().code() == StatusCode::kFailedPrecondition);
  CHECK(keel::testing::readFile(dir / "m.sock") == "precious");
}

TEST_CASE("a socket path too long for sockaddr_un is an error", "[listener]") {
  auto l = UnixListener::bind(std::string(200, 'x'), [](const PeerCredentials&) { return Status::ok(); });
  CHECK(l.status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace keel::transport
