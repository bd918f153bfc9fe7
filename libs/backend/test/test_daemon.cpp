// A backend on the SDK for daemon_test: a config file of its own format (one line, the
// socket path), replies larger than requests may be, no reflection (unless
// TEST_DAEMON_REFLECTION is set: it is built without keel_backend_reflection, so it must
// then refuse to start), and a line logged once it serves. Its one method, Hostname, answers `kReplyBytes` bytes to any reader.
#include <cstdlib>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "keel/backend/daemon.h"
#include "keel/machine/v1/machine.grpc.pb.h"

namespace keel::backend::test {
extern const std::string_view kPolicy;
}

namespace {

constexpr int kReplyBytes = 100 * 1024;

class Machine final : public keel::backend::AuthorizedService<keel::machine::v1::MachineService> {
 public:
  grpc::Status Hostname(grpc::ServerContext* context, const keel::common::v1::Empty*,
                        keel::machine::v1::HostnameResponse* out) override {
    KEEL_AUTHORIZE(context);
    out->add_messages()->set_hostname(std::string(kReplyBytes, 'h'));
    return grpc::Status::OK;
  }
};

keel::Result<keel::backend::BackendConfig> readOwnConfig(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string socket;
  if (!std::getline(in, socket) || socket.empty()) return keel::invalidArgument("expected the socket's path");
  keel::backend::BackendConfig config;
  config.name = "test-daemon";
  config.socket = socket;
  config.stateDir = path.parent_path();
  config.allowedPeerUids = {geteuid()};
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  keel::backend::DaemonSpec spec;
  spec.name = "test-daemon";
  spec.summary = "the backend SDK's test daemon";
  spec.seccompPolicy = keel::backend::test::kPolicy;
  spec.maxMessageBytes = 64 * 1024;
  spec.maxReplyBytes = -1;
  spec.reflection = std::getenv("TEST_DAEMON_REFLECTION") != nullptr;
  spec.readConfig = readOwnConfig;
  Machine machine;
  return keel::backend::runDaemon(argc, argv, spec, [&](keel::backend::Daemon& daemon) {
    daemon.whenServing([] { spdlog::info("test-daemon ready for calls"); });
    return daemon.serve(machine);
  });
}
